"""A generated spam/ham email corpus, so the benchmark downloads nothing.

Standard library only: the reference MLflow venv imports it too. The same seed always gives
the same emails, so every run trains the same model and sends the same payload.
"""

from __future__ import annotations

import random

_HAM_OPENINGS = (
    "Hi {name},",
    "Hello {name},",
    "Dear {name},",
    "{name},",
    "Morning {name},",
)
_HAM_BODIES = (
    "could we move our {topic} meeting to {day}? I have a clash at {time}.",
    "attached are the notes from the {topic} review, comments welcome before {day}.",
    "the {topic} build failed again last night, I will look into it after lunch.",
    "thanks for the quick turnaround on the {topic} report, it reads well.",
    "are you joining the {topic} call on {day} at {time}? The agenda is in the doc.",
    "I pushed the {topic} changes to the branch, can you review when you have a minute?",
    "reminder: the {topic} budget is due {day}, please send me your figures.",
    "lunch on {day}? The new place near the office does a decent {food}.",
    "the slides for {topic} need one more pass, I fixed the charts on page {page}.",
    "can you forward me the invoice from the {topic} supplier? Finance asked for it.",
)
_HAM_CLOSINGS = ("Best, {sender}", "Thanks, {sender}", "Cheers, {sender}", "{sender}", "Regards")

_SPAM_OPENINGS = (
    "Dear customer,",
    "CONGRATULATIONS!!!",
    "Dear friend,",
    "URGENT:",
    "Winner notification:",
)
_SPAM_BODIES = (
    "you have won a {prize} worth ${amount}! Click here to claim your free prize now.",
    "your account has been suspended, verify your password at {link} within 24 hours.",
    "cheap {drug} without prescription, limited offer, order now and save {pct}%.",
    "earn ${amount} a week working from home, no experience needed, act now!",
    "a wire transfer of ${amount} is waiting for you, send your bank details to claim it.",
    "exclusive deal: {pct}% off {prize}, only today, click the link {link} to buy.",
    "lose 10 kg in {days} days with this miracle pill, risk free trial, order today.",
    "you are pre-approved for a loan of ${amount}, no credit check, reply YES now.",
    "hot singles in your area want to meet you, free registration at {link}.",
    "final notice: your parcel is on hold, pay the ${amount} fee at {link} to release it.",
)
_SPAM_CLOSINGS = (
    "Unsubscribe here.",
    "This is not spam.",
    "Act now, offer expires soon!",
    "Claim department",
    "",
)

_NAMES = ("Alice", "Bob", "Carol", "Dan", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy")
_TOPICS = ("quarterly", "roadmap", "hiring", "migration", "security", "marketing", "data")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_FOODS = ("ramen", "salad", "curry", "pizza")
_PRIZES = ("iPhone", "cruise", "gift card", "laptop", "holiday package")
_DRUGS = ("pills", "meds", "supplements")
_LINKS = ("http://bit.ly/claim-now", "http://secure-verify.example", "http://free-win.example")


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        name=rng.choice(_NAMES),
        sender=rng.choice(_NAMES),
        topic=rng.choice(_TOPICS),
        day=rng.choice(_DAYS),
        time=f"{rng.randint(9, 17)}:{rng.choice(('00', '30'))}",
        food=rng.choice(_FOODS),
        page=rng.randint(2, 40),
        prize=rng.choice(_PRIZES),
        amount=rng.choice((500, 1000, 2500, 10000, 1000000)),
        link=rng.choice(_LINKS),
        drug=rng.choice(_DRUGS),
        pct=rng.choice((50, 70, 80, 90)),
        days=rng.choice((7, 14, 30)),
    )


def generate_email(label: str, rng: random.Random) -> str:
    """One email text of class ``label`` ("spam" or "ham"), drawn from ``rng``."""
    if label == "spam":
        parts = (_SPAM_OPENINGS, _SPAM_BODIES, _SPAM_CLOSINGS)
    elif label == "ham":
        parts = (_HAM_OPENINGS, _HAM_BODIES, _HAM_CLOSINGS)
    else:
        raise ValueError(f"label must be 'spam' or 'ham', got {label!r}")
    opening, body, closing = (rng.choice(choices) for choices in parts)
    sentences = [_fill(opening, rng), _fill(body, rng)]
    if rng.random() < 0.4:
        sentences.append(_fill(rng.choice(parts[1]), rng))
    sentences.append(_fill(closing, rng))
    return " ".join(sentence for sentence in sentences if sentence)


def generate_corpus(size: int, *, seed: int = 0, spam_share: float = 0.4) -> list[tuple[str, str]]:
    """``size`` (text, label) pairs, about ``spam_share`` of them spam; same seed, same corpus."""
    rng = random.Random(seed)
    labels = ["spam" if rng.random() < spam_share else "ham" for _ in range(size)]
    return [(generate_email(label, rng), label) for label in labels]
