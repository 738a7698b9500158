"""The ESL call controller: admission, answering, media streaming and playback of each call.

Transport (``controller.esl``) is injected; the logic here only sees small protocols, so it runs
the same against a real FreeSWITCH, the test double, or an in-process fake.
"""
