"""FreeSWITCH configuration rendered from the portal settings in the store (DESIGN.md §3, §4).

Pipeline: ``source`` reads the store into a validated ``model.ConfigInput``; ``render`` turns it
into files with Jinja2; ``validate`` parses and checks them; ``tree`` swaps them into place
atomically; ``snapshot`` + ``plan`` work out which ESL commands a change needs; ``apply`` sends
them; ``ready`` waits until a (re)started profile serves again; ``service`` ties the steps
together with rollback.
"""
