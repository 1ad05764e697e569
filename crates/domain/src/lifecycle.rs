//! The ticket state machine.
//!
//! ```text
//! new ──dispatch──▶ dispatched ──accept──▶ accepted ──arrive──▶ on_site ──resolve──▶ resolved ──close/callback──▶ closed
//!  │                  ▲  │ ▲                  │                   │                  │   ▲                          │
//!  │                  │  └─┴─── on_hold ◀─────┴───────────────────┘ (resume returns  │   └──── reopened ◀──reopen───┘
//!  └─resolve (on the spot)        to the state it was held in)          transferred ─┘ (dispatch again)
//! ```
//! Any state before `resolved` can be cancelled, or closed as a duplicate of another
//! ticket; `cancelled` is final. `transferred` and
//! `reopened` wait for the dispatcher exactly like `new`.
//!
//! Invariant: `held_from` is set exactly when the state is `on_hold`, and is one of the
//! working states (`dispatched`, `accepted`, `on_site`).

use crate::ticket::TicketState;

/// A move a ticket can make. Which roles may ask for it is decided in [`crate::access`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Move {
    /// Route to a department (and maybe a person); also re-assigns a dispatched ticket.
    Dispatch,
    Accept,
    ArriveOnSite,
    PutOnHold,
    Resume,
    Resolve,
    Transfer,
    Cancel,
    Close,
    Reopen,
    /// The callback: satisfied closes, unsatisfied reopens.
    RecordCallback {
        requires_rework: bool,
    },
    /// Closed because another open ticket carries the same work.
    CloseAsDuplicate,
}

/// The part of a ticket the state machine owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    pub state: TicketState,
    /// The state a ticket on hold returns to when resumed.
    pub held_from: Option<TicketState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a ticket that is {from} cannot be {verb}")]
pub struct TransitionError {
    pub from: TicketState,
    /// Where the move would have gone, when it has one target.
    pub to: Option<TicketState>,
    pub verb: &'static str,
}

impl Move {
    /// The state the move leads to, when it has one (resuming returns to where the ticket
    /// was held, so it has none).
    pub fn target(self) -> Option<TicketState> {
        use TicketState::*;
        Some(match self {
            Move::Dispatch => Dispatched,
            Move::Accept => Accepted,
            Move::ArriveOnSite => OnSite,
            Move::PutOnHold => OnHold,
            Move::Resume => return None,
            Move::Resolve => Resolved,
            Move::Transfer => Transferred,
            Move::Cancel => Cancelled,
            Move::Close => Closed,
            Move::Reopen => Reopened,
            Move::RecordCallback { requires_rework: true } => Reopened,
            Move::RecordCallback { requires_rework: false } => Closed,
            Move::CloseAsDuplicate => Closed,
        })
    }

    /// Past participle used in error messages: "cannot be accepted".
    pub fn verb(self) -> &'static str {
        match self {
            Move::Dispatch => "dispatched",
            Move::Accept => "accepted",
            Move::ArriveOnSite => "marked on site",
            Move::PutOnHold => "put on hold",
            Move::Resume => "resumed",
            Move::Resolve => "resolved",
            Move::Transfer => "transferred",
            Move::Cancel => "cancelled",
            Move::Close => "closed",
            Move::Reopen => "reopened",
            Move::RecordCallback { .. } => "given a callback",
            Move::CloseAsDuplicate => "closed as a duplicate",
        }
    }
}

impl Lifecycle {
    pub fn new() -> Self {
        Lifecycle { state: TicketState::New, held_from: None }
    }

    /// Where `mv` takes this ticket, or why it cannot.
    pub fn apply(self, mv: Move) -> Result<Lifecycle, TransitionError> {
        use TicketState::*;
        let to = |state| Ok(Lifecycle { state, held_from: None });
        match (self.state, mv) {
            (New | Transferred | Reopened | Dispatched, Move::Dispatch) => to(Dispatched),
            (Dispatched, Move::Accept) => to(Accepted),
            (Accepted, Move::ArriveOnSite) => to(OnSite),
            (Dispatched | Accepted | OnSite, Move::PutOnHold) => {
                Ok(Lifecycle { state: OnHold, held_from: Some(self.state) })
            }
            (OnHold, Move::Resume) => match self.held_from {
                Some(previous @ (Dispatched | Accepted | OnSite)) => to(previous),
                // Unreachable through `apply`; a corrupted row resumes to `dispatched` so the
                // work is picked up again rather than lost.
                _ => to(Dispatched),
            },
            (New | Dispatched | Accepted | OnSite, Move::Resolve) => to(Resolved),
            (Dispatched | Accepted | OnSite, Move::Transfer) => to(Transferred),
            (New | Dispatched | Accepted | OnSite | OnHold | Transferred | Reopened, Move::Cancel) => to(Cancelled),
            (New | Dispatched | Accepted | OnSite | OnHold | Transferred | Reopened, Move::CloseAsDuplicate) => {
                to(Closed)
            }
            (Resolved, Move::Close) => to(Closed),
            (Resolved | Closed, Move::Reopen) => to(Reopened),
            (Resolved, Move::RecordCallback { requires_rework }) => to(if requires_rework { Reopened } else { Closed }),
            (from, mv) => Err(TransitionError { from, to: mv.target(), verb: mv.verb() }),
        }
    }

    /// Whether the invariant of this module holds.
    pub fn is_consistent(self) -> bool {
        use TicketState::*;
        match (self.state, self.held_from) {
            (OnHold, Some(Dispatched | Accepted | OnSite)) => true,
            (OnHold, _) => false,
            (_, held) => held.is_none(),
        }
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TicketState::*;
    use proptest::prelude::*;

    fn at(state: TicketState) -> Lifecycle {
        let held_from = (state == OnHold).then_some(Accepted);
        Lifecycle { state, held_from }
    }

    const ALL_MOVES: [Move; 13] = [
        Move::Dispatch,
        Move::Accept,
        Move::ArriveOnSite,
        Move::PutOnHold,
        Move::Resume,
        Move::Resolve,
        Move::Transfer,
        Move::Cancel,
        Move::Close,
        Move::Reopen,
        Move::RecordCallback { requires_rework: false },
        Move::RecordCallback { requires_rework: true },
        Move::CloseAsDuplicate,
    ];

    #[test]
    fn the_happy_path_walks_every_working_state() {
        let path = [
            (Move::Dispatch, Dispatched),
            (Move::Accept, Accepted),
            (Move::ArriveOnSite, OnSite),
            (Move::PutOnHold, OnHold),
            (Move::Resume, OnSite),
            (Move::Resolve, Resolved),
            (Move::RecordCallback { requires_rework: false }, Closed),
            (Move::Reopen, Reopened),
            (Move::Dispatch, Dispatched),
            (Move::Transfer, Transferred),
            (Move::Cancel, Cancelled),
        ];
        let mut lifecycle = Lifecycle::new();
        for (mv, expected) in path {
            lifecycle = lifecycle.apply(mv).unwrap_or_else(|e| panic!("{mv:?}: {e}"));
            assert_eq!(lifecycle.state, expected, "after {mv:?}");
        }
    }

    #[test]
    fn allowed_moves_table() {
        // (from, move, to); every pair not listed must be refused.
        let allowed = [
            (New, Move::Dispatch, Dispatched),
            (Transferred, Move::Dispatch, Dispatched),
            (Reopened, Move::Dispatch, Dispatched),
            (Dispatched, Move::Dispatch, Dispatched),
            (Dispatched, Move::Accept, Accepted),
            (Accepted, Move::ArriveOnSite, OnSite),
            (Dispatched, Move::PutOnHold, OnHold),
            (Accepted, Move::PutOnHold, OnHold),
            (OnSite, Move::PutOnHold, OnHold),
            (OnHold, Move::Resume, Accepted),
            (New, Move::Resolve, Resolved),
            (Dispatched, Move::Resolve, Resolved),
            (Accepted, Move::Resolve, Resolved),
            (OnSite, Move::Resolve, Resolved),
            (Dispatched, Move::Transfer, Transferred),
            (Accepted, Move::Transfer, Transferred),
            (OnSite, Move::Transfer, Transferred),
            (New, Move::Cancel, Cancelled),
            (Dispatched, Move::Cancel, Cancelled),
            (Accepted, Move::Cancel, Cancelled),
            (OnSite, Move::Cancel, Cancelled),
            (OnHold, Move::Cancel, Cancelled),
            (Transferred, Move::Cancel, Cancelled),
            (Reopened, Move::Cancel, Cancelled),
            (New, Move::CloseAsDuplicate, Closed),
            (Dispatched, Move::CloseAsDuplicate, Closed),
            (Accepted, Move::CloseAsDuplicate, Closed),
            (OnSite, Move::CloseAsDuplicate, Closed),
            (OnHold, Move::CloseAsDuplicate, Closed),
            (Transferred, Move::CloseAsDuplicate, Closed),
            (Reopened, Move::CloseAsDuplicate, Closed),
            (Resolved, Move::Close, Closed),
            (Resolved, Move::Reopen, Reopened),
            (Closed, Move::Reopen, Reopened),
            (Resolved, Move::RecordCallback { requires_rework: false }, Closed),
            (Resolved, Move::RecordCallback { requires_rework: true }, Reopened),
        ];
        for from in TicketState::ALL {
            for mv in ALL_MOVES {
                let expected = allowed.iter().find(|(f, m, _)| f == from && *m == mv).map(|(_, _, to)| *to);
                let got = at(*from).apply(mv).ok().map(|l| l.state);
                assert_eq!(got, expected, "{from} + {mv:?}");
            }
        }
    }

    #[test]
    fn cancelled_is_final() {
        for mv in ALL_MOVES {
            assert!(at(Cancelled).apply(mv).is_err(), "{mv:?} left cancelled");
        }
    }

    #[test]
    fn resume_returns_to_the_state_it_was_held_in() {
        for working in [Dispatched, Accepted, OnSite] {
            let held = Lifecycle { state: working, held_from: None }.apply(Move::PutOnHold).unwrap();
            assert_eq!(held.held_from, Some(working));
            assert_eq!(held.apply(Move::Resume).unwrap().state, working);
        }
    }

    #[test]
    fn refusal_names_the_state_and_the_move() {
        let err = at(Closed).apply(Move::Accept).unwrap_err();
        assert_eq!(err.to_string(), "a ticket that is closed cannot be accepted");
    }

    proptest! {
        #[test]
        fn no_sequence_of_moves_reaches_an_invalid_state(moves in proptest::collection::vec(0..ALL_MOVES.len(), 0..60)) {
            let mut lifecycle = Lifecycle::new();
            for index in moves {
                let before = lifecycle;
                match lifecycle.apply(ALL_MOVES[index]) {
                    Ok(next) => {
                        prop_assert!(next.is_consistent(), "{before:?} -> {next:?}");
                        prop_assert!(before.state != Cancelled, "left cancelled");
                        lifecycle = next;
                    }
                    Err(err) => prop_assert_eq!(err.from, before.state),
                }
            }
        }
    }
}
