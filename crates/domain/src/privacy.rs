//! Residents' personal data (保密: never shown to staff who do not need it, never logged): who may see it, and how it is masked
//! for everyone else. Callers must also never log it; this module only decides display.

use crate::ticket::Role;

/// Whether this role sees a ticket's reporter name and phone in clear.
/// Technicians need them only for jobs they are sent to.
pub fn may_see_contact_details(role: Role, is_assignee: bool) -> bool {
    match role {
        Role::Technician => is_assignee,
        Role::Agent | Role::Dispatcher | Role::Supervisor | Role::Manager | Role::Admin => true,
    }
}

/// `13812345678` → `138****5678`: enough to confirm a number with the resident, not to call it.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// `张三丰` → `张**`, `Jane Doe` → `J*******`.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("+86 138 1234 5678"), "+86****5678");
        assert_eq!(mask_phone("12345"), "*****");
        assert_eq!(mask_phone("1234567"), "*******", "seven characters are all hidden");
        assert_eq!(mask_phone("12345678"), "123****5678", "from eight on, head and tail show");
        assert_eq!(mask_name("张三丰"), "张**");
        assert_eq!(mask_name("Jane Doe"), "J*******");
        assert_eq!(mask_name(""), "");
    }

    #[test]
    fn technicians_see_contact_details_only_on_their_own_jobs() {
        assert!(may_see_contact_details(Role::Technician, true));
        assert!(!may_see_contact_details(Role::Technician, false));
        for role in [Role::Agent, Role::Dispatcher, Role::Supervisor, Role::Manager, Role::Admin] {
            assert!(may_see_contact_details(role, false), "{role}");
        }
    }
}
