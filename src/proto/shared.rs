//! Messages written by hand instead of generated, for encodings shared
//! between streams.
//!
//! `WatchReleaseResponse` has the one field of its proto definition
//! (`ReleaseEvent event = 1`) and encodes and decodes exactly as the
//! generated type would. A server may build one from bytes encoded before
//! ([`WatchReleaseResponse::encoded`]): a release with 10,000 watchers then
//! encodes each event once, not 10,000 times (see BENCHMARKS.md).

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType, message, skip_field};

use super::v1::ReleaseEvent;

/// One message of `ReleaseService.WatchRelease`.
#[derive(Clone, PartialEq, Default)]
pub struct WatchReleaseResponse {
    /// A snapshot, an event or a heartbeat of the watched release (`None`
    /// in a message built from its encoding).
    pub event: Option<ReleaseEvent>,
    /// The message's encoding, when it was built from one.
    encoded: Option<Bytes>,
}

impl WatchReleaseResponse {
    pub fn new(event: ReleaseEvent) -> Self {
        Self {
            event: Some(event),
            encoded: None,
        }
    }

    /// The encoding of a message carrying `event`, to share.
    pub fn encode_event(event: &ReleaseEvent) -> Bytes {
        let mut buf = Vec::with_capacity(message::encoded_len(1, event));
        message::encode(1, event, &mut buf);
        Bytes::from(buf)
    }

    /// A message whose encoding is `bytes`, from
    /// [`WatchReleaseResponse::encode_event`].
    pub fn encoded(bytes: Bytes) -> Self {
        Self {
            event: None,
            encoded: Some(bytes),
        }
    }
}

impl std::fmt::Debug for WatchReleaseResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("WatchReleaseResponse");
        match &self.encoded {
            Some(b) => d.field("encoded_len", &b.len()),
            None => d.field("event", &self.event),
        }
        .finish()
    }
}

impl prost::Message for WatchReleaseResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match (&self.encoded, &self.event) {
            (Some(bytes), _) => buf.put_slice(bytes),
            (None, Some(event)) => message::encode(1, event, buf),
            (None, None) => {}
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        if tag != 1 {
            return skip_field(wire_type, tag, buf, ctx);
        }
        // Decoding a message built from its encoding: start from the event.
        if let Some(bytes) = self.encoded.take() {
            let decoded = <Self as prost::Message>::decode(bytes)?;
            self.event = decoded.event;
        }
        let event = self.event.get_or_insert_with(Default::default);
        message::merge(wire_type, event, buf, ctx).map_err(|mut e| {
            e.push("WatchReleaseResponse", "event");
            e
        })
    }

    fn encoded_len(&self) -> usize {
        match (&self.encoded, &self.event) {
            (Some(bytes), _) => bytes.len(),
            (None, Some(event)) => message::encoded_len(1, event),
            (None, None) => 0,
        }
    }

    fn clear(&mut self) {
        self.event = None;
        self.encoded = None;
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::proto::v1 as pb;

    fn event() -> ReleaseEvent {
        ReleaseEvent {
            release_id: "r-1".into(),
            seq: 7,
            time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            change: Some(pb::release_event::Change::Heartbeat(pb::Heartbeat {
                latest_seq: 7,
            })),
        }
    }

    /// A message built from a shared encoding is the same bytes on the wire
    /// as one built from the event, and decodes to the event.
    #[test]
    fn shared_encoding_is_the_generated_encoding() {
        let plain = WatchReleaseResponse::new(event()).encode_to_vec();
        let shared = WatchReleaseResponse::encoded(WatchReleaseResponse::encode_event(&event()))
            .encode_to_vec();
        assert_eq!(plain, shared);
        let decoded = WatchReleaseResponse::decode(shared.as_slice()).unwrap();
        assert_eq!(decoded.event, Some(event()));
        // An unknown field is skipped, as the generated code does.
        let mut with_unknown = shared.clone();
        with_unknown.extend_from_slice(&[0x10, 0x01]); // field 2, varint 1
        let decoded = WatchReleaseResponse::decode(with_unknown.as_slice()).unwrap();
        assert_eq!(decoded.event, Some(event()));
        assert_eq!(
            WatchReleaseResponse::default().encode_to_vec(),
            Vec::<u8>::new()
        );
    }
}
