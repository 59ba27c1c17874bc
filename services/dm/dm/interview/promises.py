"""What a generated reply must never say in a screening: an outcome, a job offer, a salary,
or a next step the flow does not have. The flow's own words ("we will get back to you within
three working days") are scripted and not checked here.

`is_injection` (the candidate's side of the same risk) lives in `dm.interview.injection`.
"""

from __future__ import annotations

import re

from dm.interview.injection import is_injection

__all__ = ["is_injection", "makes_promise"]

_EN = [
    r"\byou(?:'ve| have)? got the (?:job|position|role|offer)\b",
    r"\byou(?:'re| are| will be|'ll be) (?:hired|accepted|selected|approved)\b",
    r"\byou(?:'ve| have) been (?:hired|accepted|selected|approved|shortlisted)\b",
    r"\b(?:we|i)(?:'ll| will| would|'d| are going to)? (?:definitely |happily |gladly )?"
    r"(?:hire|accept|recommend) you\b",
    r"\byou(?:'ve| have)? passed\b|\byou(?:'re| are) through\b",
    r"\bnext (?:round|stage|interview|step of the (?:process|hiring))\b",
    r"\b(?:pass|move|send|forward|put|advance|refer) you (?:on |through )?to (?:the |our )?"
    r"(?:next|final|hiring|technical|team|manager|lead|cto)\b",
    r"\b(?:job )?offer (?:you|letter)\b|\bjob offer\b|\bmake you an offer\b",
    r"\bsalary\b|\bcompensation\b|\byou(?:'ll| will) (?:earn|make|be paid|get paid)\b",
    r"[$€£₽]\s?\d|\b\d+\s?k (?:a|per) (?:year|month)\b",
    r"\bcongratulations\b|\bwelcome (?:to the team|aboard)\b",
    r"\byou(?:'re| are) (?:a |an )?(?:perfect|great|excellent|strong|ideal|good) "
    r"(?:fit|match|candidate)\b",
]
_RU = [
    r"\bвы принят[аы]?\b|\bвас (?:берут|возьмут|примут|приняли|взяли|наймут|наняли)\b",
    r"\b(?:мы|я) (?:вас )?(?:бер[её]м|возьм[её]м|прим[её]м|нанима[её]м|найм[её]м)(?: вас)?\b",
    r"\bвы (?:прошли|проходите|подходите|нам подходите|нам подошли|подошли)\b",
    r"\bпоздравля\w*",
    r"\bоффер\w*|\bпредложени[еяю] о работе\b|\bпредлож\w+ вам (?:работу|должность|место)\b",
    r"\bзарплат\w*|\bоклад\w*|\bбудете получать\b",
    r"\bследующ\w+ (?:этап|раунд|тур|собеседовани)\w*",
    r"\b(?:передам|переведу|пропущу) вас\b|\bперед\w+ ваш\w* резюме\b",
    r"\bвы (?:отличн|идеальн|сильн|прекрасн)\w+ кандидат\w*",
    r"\bдобро пожаловать в команду\b",
    r"\d\s?(?:руб|тыс|k\b)",
]
# Both lists apply to either language: a reply in the wrong language is still a promise.
_PROMISE = re.compile("|".join(f"(?:{p})" for p in [*_EN, *_RU]), re.IGNORECASE)


def makes_promise(reply: str, lang: str) -> bool:
    """Whether `reply` promises an outcome, an offer, a salary or a step outside the flow."""
    return _PROMISE.search(reply.lower().replace("ё", "е").replace("’", "'")) is not None
