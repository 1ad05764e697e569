//! Who may do what: role rules and property scope.
//!
//! Every call is made by an [`Actor`] (from the bearer token). An actor acts only on the
//! properties they serve (admins serve all), and each operation is open to a set of roles;
//! the ticket's assignee may always do the field work on it, whatever their role.

use crate::lifecycle::Move;
use crate::ticket::Role;

/// The staff member making a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub staff_id: String,
    pub role: Role,
    /// Property ids this person serves.
    pub properties: Vec<String>,
}

/// What an actor asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateTicket,
    ReadTickets,
    AddNote,
    /// Add a file (a photo, a scanned letter) to a ticket.
    Attach,
    /// Push a ticket up the escalation ladder at once (上报).
    Escalate,
    /// Correct what was logged (technicians: on their own jobs).
    Correct,
    /// Make a ticket less urgent than it was logged or set.
    LowerPriority,
    /// Answer the resident (a public reply).
    Reply,
    /// Keep a case record: parties, steps, waiting on an outside party (the assignee too).
    ManageCase,
    /// Complete a serious-complaint review.
    CompleteReview,
    /// Write a property's standard replies.
    EditReplies,
    Move(Move),
    /// Create or change properties, buildings, units, residents and staff.
    ManageDirectory,
    /// Erase a resident's personal data on their request (irreversible).
    ErasePersonalData,
    /// Export everything held about a resident (their right of access).
    ExportPersonalData,
    /// Read who saw or changed residents' personal data.
    ReadAccessRecords,
    /// List and replay notification deliveries (webhooks, logs).
    ManageNotifications,
    /// Read service reports (supervisors: their own department's).
    ReadReports,
    /// Set someone's on-duty flag (`own`: their own).
    SetOnDuty {
        own: bool,
    },
    /// Read someone's worklist: follow-ups owed, tickets owned (`own`: their own).
    ReadWorklist {
        own: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("you do not serve property {0}")]
    OutsideProperties(String),
    #[error("role {role} may not {what}")]
    Role { role: Role, what: &'static str },
}

impl Actor {
    pub fn serves(&self, property_id: &str) -> bool {
        self.role == Role::Admin || self.properties.iter().any(|p| p == property_id)
    }

    /// Checks property scope first, then the role rule.
    pub fn authorize(&self, property_id: &str, operation: Operation, is_assignee: bool) -> Result<(), Denied> {
        if !self.serves(property_id) {
            return Err(Denied::OutsideProperties(property_id.to_owned()));
        }
        self.authorize_role(operation, is_assignee)
    }

    /// The role rule alone.
    pub fn authorize_role(&self, operation: Operation, is_assignee: bool) -> Result<(), Denied> {
        use Role::*;
        let (allowed, what): (&[Role], &'static str) = match operation {
            Operation::CreateTicket => (&[Agent, Dispatcher, Technician, Supervisor, Manager, Admin], "log tickets"),
            Operation::ReadTickets => (&[Agent, Dispatcher, Technician, Supervisor, Manager, Admin], "read tickets"),
            Operation::AddNote => (&[Agent, Dispatcher, Technician, Supervisor, Manager, Admin], "add notes"),
            Operation::Attach => (&[Agent, Dispatcher, Technician, Supervisor, Manager, Admin], "attach files"),
            Operation::Escalate => (&[Agent, Dispatcher, Technician, Supervisor, Manager, Admin], "escalate tickets"),
            Operation::Correct if is_assignee => return Ok(()),
            Operation::Correct => (&[Agent, Dispatcher, Supervisor, Manager, Admin], "correct others' tickets"),
            Operation::LowerPriority => (&[Supervisor, Manager, Admin], "lower a priority"),
            Operation::Reply => (&[Agent, Dispatcher, Supervisor, Manager, Admin], "answer residents"),
            Operation::ManageCase if is_assignee => return Ok(()),
            Operation::ManageCase => (&[Agent, Dispatcher, Supervisor, Manager, Admin], "keep case records"),
            Operation::CompleteReview => (&[Manager, Admin], "complete reviews"),
            Operation::EditReplies => (&[Supervisor, Manager, Admin], "edit standard replies"),
            Operation::ManageDirectory => (&[Manager, Admin], "change the directory"),
            Operation::ErasePersonalData => (&[Manager, Admin], "erase personal data"),
            Operation::ReadAccessRecords => (&[Admin], "read the access records"),
            Operation::ExportPersonalData => (&[Manager, Admin], "export a resident's data"),
            Operation::ManageNotifications => (&[Supervisor, Manager, Admin], "read or replay notifications"),
            Operation::ReadReports => (&[Supervisor, Manager, Admin], "read service reports"),
            Operation::SetOnDuty { own: true } => {
                (&[Agent, Dispatcher, Technician, Supervisor, Manager, Admin], "set on-duty")
            }
            Operation::SetOnDuty { own: false } => (&[Supervisor, Manager, Admin], "set others on duty"),
            Operation::ReadWorklist { own: true } => {
                (&[Agent, Dispatcher, Technician, Supervisor, Manager, Admin], "read their worklist")
            }
            Operation::ReadWorklist { own: false } => (&[Supervisor, Manager, Admin], "read others' worklists"),
            Operation::Move(mv) => {
                let field_work = matches!(
                    mv,
                    Move::Accept | Move::ArriveOnSite | Move::PutOnHold | Move::Resume | Move::Resolve | Move::Transfer
                );
                if field_work && is_assignee {
                    return Ok(());
                }
                match mv {
                    Move::Dispatch => (&[Dispatcher, Supervisor, Manager, Admin][..], "dispatch tickets"),
                    Move::Accept | Move::ArriveOnSite | Move::PutOnHold | Move::Resume => {
                        (&[Dispatcher, Supervisor, Manager, Admin][..], "work on tickets assigned to others")
                    }
                    // The desk answers enquiries and customer-service matters itself.
                    Move::Resolve => {
                        (&[Agent, Dispatcher, Supervisor, Manager, Admin][..], "resolve tickets assigned to others")
                    }
                    Move::Transfer => {
                        (&[Dispatcher, Supervisor, Manager, Admin][..], "transfer tickets assigned to others")
                    }
                    Move::Cancel => (&[Agent, Dispatcher, Supervisor, Manager, Admin][..], "cancel tickets"),
                    // The desk recognises the caller's report as one already logged.
                    Move::CloseAsDuplicate => (&[Agent, Dispatcher, Supervisor, Manager, Admin][..], "mark duplicates"),
                    Move::Close | Move::Reopen | Move::RecordCallback { .. } => {
                        (&[Agent, Supervisor, Manager, Admin][..], "close, reopen or call back")
                    }
                }
            }
        };
        if allowed.contains(&self.role) { Ok(()) } else { Err(Denied::Role { role: self.role, what }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;

    fn actor(role: Role) -> Actor {
        Actor { staff_id: "s".into(), role, properties: vec!["p1".into()] }
    }

    #[test]
    fn role_rules_table() {
        // (role, operation, is_assignee, allowed)
        let cases = [
            (Technician, Operation::Move(Move::Accept), true, true),
            (Technician, Operation::Move(Move::Accept), false, false),
            (Technician, Operation::Move(Move::Resolve), true, true),
            (Technician, Operation::Move(Move::Resolve), false, false),
            (Technician, Operation::Move(Move::Dispatch), true, false),
            (Technician, Operation::Move(Move::Cancel), true, false),
            (Technician, Operation::Move(Move::RecordCallback { requires_rework: false }), true, false),
            (Agent, Operation::Move(Move::Resolve), false, true),
            (Agent, Operation::ReadWorklist { own: true }, false, true),
            (Agent, Operation::ReadWorklist { own: false }, false, false),
            (Technician, Operation::ReadWorklist { own: false }, false, false),
            (Supervisor, Operation::ReadWorklist { own: false }, false, true),
            (Agent, Operation::LowerPriority, false, false),
            (Supervisor, Operation::LowerPriority, false, true),
            (Agent, Operation::Reply, false, true),
            (Technician, Operation::Reply, true, false),
            (Agent, Operation::EditReplies, false, false),
            (Supervisor, Operation::EditReplies, false, true),
            (Technician, Operation::Correct, false, false),
            (Technician, Operation::Correct, true, true),
            (Agent, Operation::Move(Move::Dispatch), false, false),
            (Agent, Operation::Move(Move::RecordCallback { requires_rework: true }), false, true),
            (Agent, Operation::Move(Move::Cancel), false, true),
            (Agent, Operation::Move(Move::CloseAsDuplicate), false, true),
            (Technician, Operation::Move(Move::CloseAsDuplicate), true, false),
            (Dispatcher, Operation::Move(Move::Dispatch), false, true),
            (Dispatcher, Operation::Move(Move::Close), false, false),
            (Supervisor, Operation::Move(Move::Accept), false, true),
            (Agent, Operation::ManageDirectory, false, false),
            (Manager, Operation::ManageDirectory, false, true),
            (Technician, Operation::SetOnDuty { own: true }, false, true),
            (Technician, Operation::SetOnDuty { own: false }, false, false),
            (Technician, Operation::CreateTicket, false, true),
            (Supervisor, Operation::ManageNotifications, false, true),
            (Technician, Operation::ManageNotifications, false, false),
            (Manager, Operation::ReadReports, false, true),
            (Supervisor, Operation::ReadReports, false, true),
            (Agent, Operation::ReadReports, false, false),
            (Dispatcher, Operation::ReadReports, false, false),
        ];
        for (role, operation, is_assignee, allowed) in cases {
            let got = actor(role).authorize("p1", operation, is_assignee).is_ok();
            assert_eq!(got, allowed, "{role} {operation:?} assignee={is_assignee}");
        }
    }

    #[test]
    fn nobody_but_admins_acts_outside_their_properties() {
        for role in Role::ALL {
            let result = actor(*role).authorize("p2", Operation::ReadTickets, false);
            assert_eq!(result.is_ok(), *role == Admin, "{role}");
        }
        assert_eq!(
            actor(Agent).authorize("p2", Operation::ReadTickets, false),
            Err(Denied::OutsideProperties("p2".into()))
        );
    }
}
