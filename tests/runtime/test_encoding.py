"""The hand-written Avro encoders produce exactly what the validating codec produces."""

from __future__ import annotations

from lts_fixtures import buffer_deployment, choice_deployment

from processors.csp.runtime import records as R
from processors.csp.runtime.encoding import EventDecoder, FastEncoder
from processors.csp.runtime.step import Command, apply
from schemas.codec import Codec
from schemas.registry import LocalRegistry


def test_fast_encoders_match_codec() -> None:
    codec = Codec(LocalRegistry.load())
    enc = FastEncoder(codec)
    edec = EventDecoder(codec)
    assert enc.fast_event and enc.fast_channel and edec.fast
    buf, ch = buffer_deployment(), choice_deployment()
    deps = {d.key: d for d in (buf, ch)}

    def lookup(s: str, v: int | None):  # type: ignore[no-untyped-def]
        return next((d for d in deps.values() if d.system == s), None)

    seen_choice = False
    for i in range(40):
        iid = f"ü-{i}" if i % 2 else f"inst-{i}"
        start = Command(
            "c0", iid, "START", system="choice" if i % 3 else "buf", issued_at=1_700_000_000_000 + i
        )
        out = apply(start, None, lookup)
        inst = out.instance
        assert inst is not None
        steps = list(out.steps)
        offer = Command(
            f"c{i}",
            iid,
            "OFFER",
            event="in.1" if inst.system == "buf" else "a",
            offer_id=None if i % 4 else f"o{i}",
            issued_at=5 + i,
        )
        o2 = apply(offer, inst, lookup)
        steps += o2.steps
        dep = lookup(inst.system, None)
        for step in steps:
            seen_choice |= step.choice is not None
            for part, off in ((None, None), (3, 123456789012)):
                want = codec.decode(
                    codec.encode("CspEvent", R.event_record(dep, iid, step, offer, part, off))
                )
                assert codec.decode(enc.event(dep, iid, step, offer, part, off)) == want
            want = codec.decode(codec.encode("ChannelMessage", R.channel_message(dep, iid, step, -7)))
            assert codec.decode(enc.channel_message(dep, iid, step, -7)) == want
        snap = R.snapshot_record(o2.instance or inst, 1, 2)
        assert codec.decode(enc.snapshot(o2.instance or inst, 1, 2)) == codec.decode(
            codec.encode("CspSnapshot", snap)
        )
    assert seen_choice


def test_command_decoder_matches_codec_and_rejects_garbage() -> None:
    import pytest

    from processors.csp.runtime.encoding import CommandDecoder

    codec = Codec(LocalRegistry.load())
    dec = CommandDecoder(codec)
    assert dec.fast
    samples = [
        R.command_record("c", "i", "START", 0, system="s", version=3, params={"a": "1", "ü": "x" * 300}),
        R.command_record("c" * 200, "inst-ü", "OFFER", -5, event="c.1.true", offer_id="o"),
        R.command_record("", "i", "STOP", 2**50),
    ]
    for rec in samples:
        raw = codec.encode("CspCommand", rec)
        assert dec.decode(raw) == codec.decode(raw)
        for cut in (6, len(raw) - 1):
            with pytest.raises(Exception):  # noqa: B017 - the codec's DecodeError, whatever its class
                dec.decode(raw[:cut])
    other = codec.encode(
        "CspSnapshot",
        R.snapshot_record(
            __import__("processors.csp.runtime.model", fromlist=["Instance"]).Instance(
                "i",
                "s",
                1,
                0,
                0,
                __import__("processors.csp.runtime.model", fromlist=["Status"]).Status.RUNNING,
            ),
            None,
            None,
        ),
    )
    assert dec.decode(other)[0] == "CspSnapshot"
