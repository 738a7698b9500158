"""Translation quality per direction: what the caller said vs what the engine recognised (WER)
and what the listener was given to hear vs a reference translation (chrF).

Ten short contact-centre sentences, the same ten in every language (a small parallel corpus
written for this bench; each language's sentence is the reference translation of the others).
Each is spoken by espeak-ng (controller/demo/audio.py ``speak``; English also by the bundled
Piper voice, a more natural speaker), then passed through the phone line's degradation as the
product meets it: 16 kHz → 8 kHz (soxr), G.711 µ-law encode + decode (tests/e2e/rtp.py, the real
caller's codec), → 16 kHz again (mod_audio_stream's ``16k``), with 300 ms of silence either side
(the bridge's utterances carry the VAD's pre-roll and hangover). The product's engine
(OfflineEngine.process, as the bridge calls it, with the session's languages) then recognises and
translates it; speech synthesis is skipped (``synthesize=False``: it is not scored). For the
directions a text translator serves alone (apertium), a ``text`` row also gives its chrF on the
reference transcript: translation quality with recognition taken out.

Directions: those ``served_directions()`` reports for this install among the bench's languages
(en es de fr it pt nl pl ru); every other Whisper language → en / → es is served the same way
(whisper-translate, whisper-translate+apertium) and is not measured here.

    .venv/bin/python bench/quality_bench.py [--languages en,es,de] [--audio phone,clean] [--show]

Prints figures; asserts nothing. WER / chrF: bench/quality_metrics.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quality_metrics import chrf, sentence_chrf, wer  # noqa: E402
from controller.demo.audio import speak  # noqa: E402
from media_bridge.audio import resample  # noqa: E402
from media_bridge.capabilities import served_directions  # noqa: E402
from media_bridge.config import BridgeConfig  # noqa: E402
from media_bridge.engines.base import Transcript, Translation, UtteranceRequest  # noqa: E402
from media_bridge.engines.offline import OfflineEngine  # noqa: E402
from media_bridge.engines.tts_piper import PiperTTS, bundled_english_voice  # noqa: E402
from tests.e2e.rtp import ulaw_decode, ulaw_encode  # noqa: E402

RATE = 16000
PHONE_RATE = 8000

# espeak-ng voice per language (Brazilian Portuguese: the larger contact-centre market).
VOICES = {"en": "en-us", "es": "es", "de": "de", "fr": "fr", "it": "it", "pt": "pt-br", "nl": "nl",
          "pl": "pl", "ru": "ru"}

# The same ten sentences in each language; no digits (Whisper writes "5" for "five", which WER
# would count as an error of the recogniser).
SENTENCES: dict[str, list[str]] = {
    "en": [
        "Hello, I am calling about my last invoice.",
        "My internet connection has not worked since yesterday.",
        "Could you send me a new password, please?",
        "I would like to cancel my subscription.",
        "The delivery arrived late and the box was damaged.",
        "Can I speak to a supervisor, please?",
        "Thank you for your patience, I will check your account now.",
        "Your refund will arrive next week.",
        "Is there anything else I can help you with today?",
        "Please confirm your address and your date of birth.",
    ],
    "es": [
        "Hola, llamo por mi última factura.",
        "Mi conexión a internet no funciona desde ayer.",
        "¿Podría enviarme una nueva contraseña, por favor?",
        "Me gustaría cancelar mi suscripción.",
        "La entrega llegó tarde y la caja estaba dañada.",
        "¿Puedo hablar con un supervisor, por favor?",
        "Gracias por su paciencia, ahora voy a revisar su cuenta.",
        "Su reembolso llegará la próxima semana.",
        "¿Hay algo más en lo que pueda ayudarle hoy?",
        "Por favor, confirme su dirección y su fecha de nacimiento.",
    ],
    "de": [
        "Hallo, ich rufe wegen meiner letzten Rechnung an.",
        "Meine Internetverbindung funktioniert seit gestern nicht.",
        "Könnten Sie mir bitte ein neues Passwort schicken?",
        "Ich möchte mein Abonnement kündigen.",
        "Die Lieferung kam zu spät und der Karton war beschädigt.",
        "Kann ich bitte mit einem Vorgesetzten sprechen?",
        "Vielen Dank für Ihre Geduld, ich prüfe jetzt Ihr Konto.",
        "Ihre Rückerstattung kommt nächste Woche.",
        "Kann ich Ihnen heute sonst noch helfen?",
        "Bitte bestätigen Sie Ihre Adresse und Ihr Geburtsdatum.",
    ],
    "fr": [
        "Bonjour, j'appelle au sujet de ma dernière facture.",
        "Ma connexion internet ne fonctionne plus depuis hier.",
        "Pourriez-vous m'envoyer un nouveau mot de passe, s'il vous plaît ?",
        "Je voudrais résilier mon abonnement.",
        "La livraison est arrivée en retard et le carton était abîmé.",
        "Puis-je parler à un responsable, s'il vous plaît ?",
        "Merci de votre patience, je vérifie votre compte maintenant.",
        "Votre remboursement arrivera la semaine prochaine.",
        "Puis-je vous aider avec autre chose aujourd'hui ?",
        "Veuillez confirmer votre adresse et votre date de naissance.",
    ],
    "it": [
        "Buongiorno, chiamo per la mia ultima fattura.",
        "La mia connessione internet non funziona da ieri.",
        "Potrebbe inviarmi una nuova password, per favore?",
        "Vorrei disdire il mio abbonamento.",
        "La consegna è arrivata in ritardo e la scatola era danneggiata.",
        "Posso parlare con un responsabile, per favore?",
        "Grazie per la pazienza, ora controllo il suo account.",
        "Il suo rimborso arriverà la prossima settimana.",
        "Posso aiutarla in qualcos'altro oggi?",
        "Per favore, confermi il suo indirizzo e la sua data di nascita.",
    ],
    "pt": [
        "Olá, estou ligando por causa da minha última fatura.",
        "Minha conexão de internet não funciona desde ontem.",
        "Você poderia me enviar uma nova senha, por favor?",
        "Eu gostaria de cancelar minha assinatura.",
        "A entrega chegou atrasada e a caixa estava danificada.",
        "Posso falar com um supervisor, por favor?",
        "Obrigado pela paciência, vou verificar sua conta agora.",
        "Seu reembolso vai chegar na próxima semana.",
        "Posso ajudar em mais alguma coisa hoje?",
        "Por favor, confirme seu endereço e sua data de nascimento.",
    ],
    "nl": [
        "Hallo, ik bel over mijn laatste factuur.",
        "Mijn internetverbinding werkt sinds gisteren niet meer.",
        "Kunt u mij alstublieft een nieuw wachtwoord sturen?",
        "Ik wil graag mijn abonnement opzeggen.",
        "De levering kwam te laat en de doos was beschadigd.",
        "Kan ik alstublieft een leidinggevende spreken?",
        "Bedankt voor uw geduld, ik controleer nu uw account.",
        "Uw terugbetaling komt volgende week.",
        "Kan ik u vandaag nog ergens anders mee helpen?",
        "Wilt u uw adres en uw geboortedatum bevestigen?",
    ],
    "pl": [
        "Dzień dobry, dzwonię w sprawie mojej ostatniej faktury.",
        "Moje połączenie internetowe nie działa od wczoraj.",
        "Czy mógłby pan przesłać mi nowe hasło?",
        "Chciałbym anulować moją subskrypcję.",
        "Przesyłka przyszła z opóźnieniem, a pudełko było uszkodzone.",
        "Czy mogę porozmawiać z kierownikiem?",
        "Dziękuję za cierpliwość, teraz sprawdzę pana konto.",
        "Zwrot pieniędzy dotrze w przyszłym tygodniu.",
        "Czy mogę jeszcze w czymś dzisiaj pomóc?",
        "Proszę potwierdzić swój adres i datę urodzenia.",
    ],
    "ru": [
        "Здравствуйте, я звоню по поводу моего последнего счета.",
        "Мой интернет не работает со вчерашнего дня.",
        "Не могли бы вы прислать мне новый пароль?",
        "Я хотел бы отменить свою подписку.",
        "Доставка опоздала, и коробка была повреждена.",
        "Могу я поговорить с руководителем?",
        "Спасибо за терпение, сейчас я проверю ваш аккаунт.",
        "Ваш возврат придет на следующей неделе.",
        "Могу ли я еще чем-нибудь вам помочь сегодня?",
        "Пожалуйста, подтвердите ваш адрес и дату рождения.",
    ],
}


def phone_line(pcm: np.ndarray) -> np.ndarray:
    """16 kHz int16 → what the bridge receives from a G.711 µ-law call: 8 kHz, µ-law, 16 kHz."""
    narrow = resample(pcm, RATE, PHONE_RATE)
    return resample(ulaw_decode(ulaw_encode(narrow)), PHONE_RATE, RATE)


@dataclass
class Row:
    source: str
    target: str
    path: str
    speaker: str  # espeak-ng | piper
    audio: str  # phone | clean | text (the reference transcript, straight to the text translator)
    refs: list[str] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)
    ref_translations: list[str] = field(default_factory=list)
    translations: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    audio_s: list[float] = field(default_factory=list)
    paths_seen: set[str] = field(default_factory=set)
    redone: int = 0  # sentences whose fitted-window decode looped and was redone in 30 s
    cut: int = 0  # sentences whose fitted-window decode repeated itself and was cut


class Speakers:
    def __init__(self) -> None:
        voice = bundled_english_voice()
        self.piper = PiperTTS(voice) if voice is not None else None
        self.cache: dict[tuple[str, str, str], np.ndarray] = {}

    def names(self, language: str, english: str) -> list[str]:
        if language != "en" or self.piper is None or english == "espeak":
            return ["espeak-ng"]
        return ["piper"] if english == "piper" else ["espeak-ng", "piper"]

    def say(self, text: str, language: str, speaker: str) -> np.ndarray:
        key = (text, language, speaker)
        if key not in self.cache:
            if speaker == "piper" and self.piper is not None:
                samples, rate = self.piper.synthesize(text, language)
                pcm = resample(samples, rate, RATE)
            else:
                pcm = np.frombuffer(speak(text, VOICES[language], rate=RATE), dtype="<i2").astype(np.int16)
            pad = np.zeros(int(0.3 * RATE), np.int16)
            self.cache[key] = np.concatenate([pad, pcm, pad])
        return self.cache[key]


def run_row(engine: OfflineEngine, row: Row, speakers: Speakers, count: int, show: bool) -> None:
    for text, reference in zip(SENTENCES[row.source][:count], SENTENCES[row.target][:count], strict=True):
        pcm = speakers.say(text, row.source, row.speaker)
        if row.audio == "phone":
            pcm = phone_line(pcm)
        request = UtteranceRequest(pcm, RATE, row.source, row.target, RATE, synthesize=False)
        heard = translated = ""
        t0 = time.perf_counter()
        retries, cuts = engine.asr.full_window_retries, engine.asr.loops_cut
        for result in engine.process(request):
            if isinstance(result, Transcript):
                heard = result.text
            elif isinstance(result, Translation):
                translated = result.text
                row.paths_seen.add(result.path or "?")
        row.seconds.append(time.perf_counter() - t0)
        row.redone += engine.asr.full_window_retries > retries
        row.cut += engine.asr.loops_cut > cuts
        row.audio_s.append(pcm.size / RATE)
        row.refs.append(text)
        row.heard.append(heard)
        row.ref_translations.append(reference)
        row.translations.append(translated)
        if show:
            print(f"    said  {text}\n    heard {heard}\n    got   {translated}"
                  f"   [chrF {sentence_chrf(reference, translated):.0f}]\n    want  {reference}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--languages", default=",".join(SENTENCES), help="comma-separated, among "
                        + " ".join(SENTENCES))
    parser.add_argument("--sentences", type=int, default=10, help="first N sentences per language")
    parser.add_argument("--audio", default="phone", help="phone (8 kHz G.711 µ-law), clean (16 kHz) or both")
    parser.add_argument("--english-speaker", default="both", choices=("espeak", "piper", "both"),
                        help="who says the English sentences")
    parser.add_argument("--show", action="store_true", help="print every sentence")
    args = parser.parse_args()
    languages = [lang for lang in args.languages.split(",") if lang in SENTENCES]
    audios = ["phone", "clean"] if args.audio == "both" else [args.audio]

    config = BridgeConfig.from_env()
    served = served_directions(config)
    mine = [d for d in served if d.source in languages and d.target in languages]
    mine.sort(key=lambda d: (d.source != "en", d.source != "es", d.target != "en", d.source))
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; ASR {served[0].asr if served else '?'}, "
          f"asr_threads {config.asr_threads}, beam {config.asr_beam_size}, {config.asr_compute_type}")
    print(f"install serves {len(served)} directions; measuring {len(mine)} among {' '.join(languages)}")
    t0 = time.perf_counter()
    engine = OfflineEngine(config)
    engine.warm_up()
    print(f"model load {time.perf_counter() - t0:.1f} s")
    speakers = Speakers()
    rows: list[Row] = []
    for direction in mine:
        for audio in audios:
            for speaker in speakers.names(direction.source, args.english_speaker):
                row = Row(direction.source, direction.target, direction.mt, speaker, audio)
                if args.show:
                    print(f"{row.source}→{row.target} {row.path} ({speaker}, {audio})")
                run_row(engine, row, speakers, args.sentences, args.show)
                rows.append(row)
                print(f"  {row.source}→{row.target} {speaker:<9} {audio:<5}"
                      f" WER {wer(row.refs, row.heard):5.1%}"
                      f"  chrF {chrf(row.ref_translations, row.translations):5.1f}"
                      f"  {np.mean(row.seconds):.2f} s/sentence"
                      f"  loops: {row.cut} cut, {row.redone} redone in 30 s", flush=True)
    for direction in mine:
        if direction.mt.startswith("whisper-translate"):
            continue  # Whisper translates audio, not text: no text-only figure for it
        # The text translator alone, on the reference transcript (as if recognition were perfect).
        row = Row(direction.source, direction.target, direction.mt, "-", "text")
        for text, reference in zip(SENTENCES[row.source][: args.sentences],
                                   SENTENCES[row.target][: args.sentences], strict=True):
            t = time.perf_counter()
            row.translations.append(engine.translate(text, row.source, row.target))
            row.seconds.append(time.perf_counter() - t)
            row.refs.append(text)
            row.heard.append(text)
            row.ref_translations.append(reference)
            row.audio_s.append(0.0)
        rows.append(row)
        print(f"  {row.source}→{row.target} reference text → {row.path}:"
              f" chrF {chrf(row.ref_translations, row.translations):5.1f}", flush=True)
    print()
    print("| direction | path | speaker | audio | WER | chrF | n | mean s / sentence (audio s)"
          " | loops cut / redone |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        path = row.path
        if not row.paths_seen <= {row.path}:
            path += f" (seen: {', '.join(sorted(row.paths_seen))})"
        error = "—" if row.audio == "text" else f"{wer(row.refs, row.heard):.1%}"
        print(f"| {row.source}→{row.target} | {path} | {row.speaker} | {row.audio} "
              f"| {error} | {chrf(row.ref_translations, row.translations):.1f} "
              f"| {len(row.refs)} | {np.mean(row.seconds):.2f}"
              + (" | — |" if row.audio == "text"
                 else f" ({np.mean(row.audio_s):.1f}) | {row.cut} / {row.redone} |"))


if __name__ == "__main__":
    main()
