//! Work owed to the resident once a ticket is resolved: the reply in the channel the
//! request came in (a letter answers a letter) and the callback, and the life of each.

use crate::ticket::{Channel, coded_enum};

coded_enum!(
    /// What is owed.
    FollowUpKind, "follow-up kind" {
        /// The answer, in the channel of origin.
        Reply => "reply",
        /// The call after resolution that asks how it went (回访).
        Callback => "callback",
        /// The answer owed to the party that referred the request (head office, an authority),
        /// by the channel it asked for.
        ReferrerReply => "referrer_reply",
        /// Chasing an outside party the matter was referred to for its result.
        Chase => "chase",
    }
);

coded_enum!(
    /// Where a follow-up stands.
    FollowUpState, "follow-up state" {
        Open => "open",
        Done => "done",
        /// No longer owed (the ticket was cancelled, reopened, or closed without it).
        Cancelled => "cancelled",
    }
);

coded_enum!(
    /// How the resident is reached.
    ReplyMethod, "reply method" {
        Letter => "letter",
        AppMessage => "app_message",
        PhoneCall => "phone_call",
        CallOrVisit => "call_or_visit",
    }
);

impl ReplyMethod {
    /// The reply in the channel of origin: a letter (or a referral) is answered by letter,
    /// the app by an app message, a call by a call, a visit by a call or a visit.
    pub fn for_channel(channel: Channel) -> ReplyMethod {
        match channel {
            Channel::Letter | Channel::Referral => ReplyMethod::Letter,
            Channel::App => ReplyMethod::AppMessage,
            Channel::Phone => ReplyMethod::PhoneCall,
            Channel::WalkIn | Channel::HomeVisit => ReplyMethod::CallOrVisit,
        }
    }
}

coded_enum!(
    /// Where a notification's delivery stands.
    DeliveryState, "delivery state" {
        /// Waiting for its (next) attempt.
        Pending => "pending",
        Delivered => "delivered",
        /// Every attempt failed; it can be replayed.
        Dead => "dead",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_is_answered_in_its_own_way() {
        let cases = [
            (Channel::Letter, ReplyMethod::Letter),
            (Channel::Referral, ReplyMethod::Letter),
            (Channel::App, ReplyMethod::AppMessage),
            (Channel::Phone, ReplyMethod::PhoneCall),
            (Channel::WalkIn, ReplyMethod::CallOrVisit),
            (Channel::HomeVisit, ReplyMethod::CallOrVisit),
        ];
        for (channel, method) in cases {
            assert_eq!(ReplyMethod::for_channel(channel), method, "{channel}");
        }
        for state in FollowUpState::ALL.iter().chain([FollowUpState::Done].iter()) {
            assert_eq!(state.code().parse::<FollowUpState>(), Ok(*state));
        }
        for state in DeliveryState::ALL {
            assert_eq!(state.code().parse::<DeliveryState>(), Ok(*state));
        }
    }
}
