//! Input rules shared by every entry point: which field is wrong and why.
//!
//! Validators collect every violation of a request (not only the first), so a front end
//! can mark all the bad fields at once.

use uuid::Uuid;

pub const MAX_TITLE: usize = 120;
pub const MAX_DESCRIPTION: usize = 4000;
pub const MAX_NOTE: usize = 2000;
pub const MAX_NAME: usize = 100;
pub const MAX_LOCATION: usize = 200;
pub const MAX_ADDRESS: usize = 200;
pub const MAX_SHORT_LABEL: usize = 50;
pub const MAX_ROOM: usize = 20;
pub const MAX_PAGE_SIZE: i32 = 200;
pub const DEFAULT_PAGE_SIZE: i32 = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Violations::default()
    }

    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(FieldViolation { field: field.to_owned(), description: description.into() });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was found.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Text that must be present, not blank, and at most `max` characters.
    pub fn required_text(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.add(field, "is required");
        } else {
            self.optional_text(field, value, max);
        }
    }

    /// Text that may be empty but at most `max` characters and free of control characters.
    pub fn optional_text(&mut self, field: &str, value: &str, max: usize) {
        let length = value.chars().count();
        if length > max {
            self.add(field, format!("must be at most {max} characters (got {length})"));
        } else if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
            self.add(field, "must not contain control characters");
        }
    }

    /// A resource id (UUID). Returns the canonical form when valid.
    pub fn required_id(&mut self, field: &str, value: &str) -> Option<String> {
        if value.is_empty() {
            self.add(field, "is required");
            return None;
        }
        self.optional_id(field, value)
    }

    /// An id that may be empty.
    pub fn optional_id(&mut self, field: &str, value: &str) -> Option<String> {
        if value.is_empty() {
            return None;
        }
        match Uuid::parse_str(value) {
            Ok(id) => Some(id.hyphenated().to_string()),
            Err(_) => {
                self.add(field, "must be a UUID such as 01936f0e-8c4a-7b1e-9d3f-0a1b2c3d4e5f");
                None
            }
        }
    }

    /// A phone number as people write it: digits with optional spaces, '+' and '-'.
    pub fn optional_phone(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        let allowed = value.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-'));
        let digits = value.chars().filter(char::is_ascii_digit).count();
        if !allowed || !(5..=20).contains(&value.chars().count()) || digits < 5 {
            self.add(field, "must be a phone number: 5 to 20 digits, spaces, '+' or '-'");
        }
    }

    /// A phone number to look up by: its key (`search::phone_key`) when given, `None` when
    /// empty; a malformed one is a violation.
    pub fn phone_filter(&mut self, field: &str, value: &str) -> Option<String> {
        if value.is_empty() {
            return None;
        }
        self.optional_phone(field, value);
        crate::search::phone_key(value)
    }

    /// A page size: 0 means the default; above the maximum is refused rather than cut,
    /// so a client never silently gets fewer rows than it asked for.
    pub fn page_size(&mut self, field: &str, value: i32) -> u64 {
        match value {
            0 => DEFAULT_PAGE_SIZE as u64,
            1..=MAX_PAGE_SIZE => value as u64,
            _ => {
                self.add(
                    field,
                    format!("must be between 1 and {MAX_PAGE_SIZE} (0 for the default of {DEFAULT_PAGE_SIZE})"),
                );
                DEFAULT_PAGE_SIZE as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        // (value, max, required, expected description)
        let cases: [(&str, usize, bool, Option<&str>); 7] = [
            ("", 10, true, Some("is required")),
            ("   ", 10, true, Some("is required")),
            ("", 10, false, None),
            ("水管爆裂", 4, true, None),
            ("水管爆裂了", 4, true, Some("must be at most 4 characters (got 5)")),
            ("line\nbreak", 20, true, None),
            ("bell\u{7}", 20, true, Some("must not contain control characters")),
        ];
        for (value, max, required, expected) in cases {
            let mut v = Violations::new();
            if required {
                v.required_text("f", value, max)
            } else {
                v.optional_text("f", value, max)
            }
            assert_eq!(v.0.first().map(|f| f.description.as_str()), expected, "{value:?}");
        }
    }

    #[test]
    fn ids_phones_and_pages() {
        let mut v = Violations::new();
        assert_eq!(
            v.required_id("id", "0193A6F0-8C4A-7B1E-9D3F-0A1B2C3D4E5F").as_deref(),
            Some("0193a6f0-8c4a-7b1e-9d3f-0a1b2c3d4e5f")
        );
        assert!(v.is_empty());
        assert_eq!(v.required_id("id", "ticket-1"), None);
        v.optional_phone("phone", "+86 138-1234-5678");
        assert_eq!(v.0.len(), 1);
        // 5 to 20 characters with at least 5 digits; only digits, spaces, '+' and '-'.
        let phones = [
            ("12345", true),
            ("1234", false),
            ("12 34", false),
            ("12345678901234567890", true),
            ("123456789012345678901", false),
            ("+86-12345", true),
            ("1234a", false),
            ("", true),
        ];
        for (phone, valid) in phones {
            let mut one = Violations::new();
            one.optional_phone("phone", phone);
            assert_eq!(one.is_empty(), valid, "{phone:?}");
            assert_eq!(one.into_result().is_ok(), valid, "{phone:?}");
        }
        v.optional_phone("phone", "call me");
        assert_eq!(v.page_size("page_size", 0), 50);
        assert_eq!(v.page_size("page_size", 200), 200);
        v.page_size("page_size", 201);
        let fields: Vec<_> = v.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["id", "phone", "page_size"]);
    }
}
