"""The bridge's hand-written Avro equals the validating codec."""

from __future__ import annotations

from processors.channels.fastcodec import FastChannelCodec
from processors.csp.runtime.records import command_record
from schemas.codec import Codec
from schemas.registry import LocalRegistry


def test_fast_channel_codec_matches_the_codec() -> None:
    codec = Codec(LocalRegistry.load())
    fast = FastChannelCodec(codec)
    for cid, iid, event, ts in [
        ("ch:t:0:1", "i", "left.1", 0),
        ("ln:x->y:é" * 20, "ü" * 90, "c", 1_700_000_000_123),
    ]:
        want = codec.encode("CspCommand", command_record(cid, iid, "OFFER", ts, event=event, offer_id=cid))
        assert fast.offer(cid, iid, event, ts) == want
        assert codec.decode(want)[1]["event"] == event
    for values in ([], ["1"], [str(i) for i in range(200)]):
        msg = {"instance_id": "inst-1", "system": "s", "channel": "c", "event": ".".join(["c", *values]),
               "values": values, "seq": 12345678901, "timestamp": 1_700_000_000_000}  # fmt: skip
        got = fast.channel_message(codec.encode("ChannelMessage", msg))
        assert got == ("inst-1", "s", "c", msg["event"], values, 12345678901, 1_700_000_000_000)
    assert fast.channel_message(codec.encode("CspCommand", command_record("c", "i", "STOP", 0))) is None
