//! Lets a subscriber's feedback through the media engine to the room core.
//!
//! The engine's interceptor chain ends in a terminus that keeps all inbound
//! RTCP from the application unless an interceptor marks a packet for
//! delivery. An SFU must relay a subscriber's PLI or FIR to the publisher,
//! and answers its NACKs itself from the shared layer buffers (see
//! `media/sequencer.rs`), so this interceptor, last before the terminus,
//! marks exactly those, the reports whose loss, jitter and round trip
//! the core samples for metrics, and every sender report: a publisher's
//! carries its streams' RTP↔NTP mapping, which the core passes on in its
//! own (lip sync) and aligns simulcast layers by; and a subscriber's
//! transport-wide feedback (TWCC), its bandwidth estimate's input.

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Application-most position: every engine interceptor sees the packet first.
pub const SLOT: usize = 20_000;

#[derive(Default)]
pub struct FeedbackRelay {
    queues: super::Queues,
}

/// Whether an RTCP packet is for the room core: a keyframe request, a
/// NACK, transport-wide feedback, a receiver report with reception report
/// blocks, or a sender report.
fn for_the_core(p: &dyn rtc::rtcp::Packet) -> bool {
    let any = p.as_any();
    any.is::<PictureLossIndication>()
        || any.is::<FullIntraRequest>()
        || any.is::<TransportLayerNack>()
        || any.is::<TransportLayerCc>()
        || any.is::<SenderReport>()
        || any
            .downcast_ref::<ReceiverReport>()
            .is_some_and(|r| !r.reports.is_empty())
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackRelay {
    super::pass_on!();

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            if packets.iter().any(|p| for_the_core(p.as_ref())) {
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
        self.queues.reads.push_back(msg);
        Ok(())
    }
}

impl Interceptor for FeedbackRelay {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}
