//! Name conversions: the default event-type name (SCREAMING_SNAKE_CASE of the type name) and
//! serde's `rename_all` rules, applied to field names to get their JSON names.

/// `TicketUpdated` -> `TICKET_UPDATED`, `HTTPRequestSeen` -> `HTTP_REQUEST_SEEN`.
///
/// A word starts at an uppercase letter that follows a lowercase letter or a digit, or that
/// ends a run of capitals (the `R` of `HTTPRequest`). Existing underscores are kept, never
/// doubled.
pub(crate) fn screaming_snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary =
                prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower);
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// Whether `name` is a valid event-type name: `[A-Z][A-Z0-9_]*`.
pub(crate) fn is_valid_event_type(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase())
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// A serde `rename_all` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RenameRule {
    /// `lowercase`
    Lower,
    /// `UPPERCASE`
    Upper,
    /// `PascalCase`
    Pascal,
    /// `camelCase`
    Camel,
    /// `snake_case`
    Snake,
    /// `SCREAMING_SNAKE_CASE`
    ScreamingSnake,
    /// `kebab-case`
    Kebab,
    /// `SCREAMING-KEBAB-CASE`
    ScreamingKebab,
}

impl RenameRule {
    /// The rule serde knows by this name, if any.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "lowercase" => Self::Lower,
            "UPPERCASE" => Self::Upper,
            "PascalCase" => Self::Pascal,
            "camelCase" => Self::Camel,
            "snake_case" => Self::Snake,
            "SCREAMING_SNAKE_CASE" => Self::ScreamingSnake,
            "kebab-case" => Self::Kebab,
            "SCREAMING-KEBAB-CASE" => Self::ScreamingKebab,
            _ => return None,
        })
    }

    /// The JSON name serde gives a `snake_case` Rust field under this rule (exactly as
    /// serde_derive's `RenameRule::apply_to_field`).
    pub(crate) fn apply_to_field(self, field: &str) -> String {
        match self {
            Self::Lower | Self::Snake => field.to_owned(),
            Self::Upper | Self::ScreamingSnake => field.to_ascii_uppercase(),
            Self::Pascal => {
                let mut pascal = String::with_capacity(field.len());
                let mut capitalize = true;
                for ch in field.chars() {
                    if ch == '_' {
                        capitalize = true;
                    } else if capitalize {
                        pascal.push(ch.to_ascii_uppercase());
                        capitalize = false;
                    } else {
                        pascal.push(ch);
                    }
                }
                pascal
            }
            Self::Camel => {
                let pascal = Self::Pascal.apply_to_field(field);
                let mut chars = pascal.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    None => pascal,
                }
            }
            Self::Kebab => field.replace('_', "-"),
            Self::ScreamingKebab => field.to_ascii_uppercase().replace('_', "-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screaming_snake_names() {
        for (input, expected) in [
            ("TicketUpdated", "TICKET_UPDATED"),
            ("TimeEntrySubmitted", "TIME_ENTRY_SUBMITTED"),
            ("HTTPRequestSeen", "HTTP_REQUEST_SEEN"),
            ("Ticket", "TICKET"),
            ("Ticket2Updated", "TICKET2_UPDATED"),
            ("Ticket_Updated", "TICKET_UPDATED"),
            ("IOError", "IO_ERROR"),
            ("UserID", "USER_ID"),
            ("V2", "V2"),
        ] {
            assert_eq!(screaming_snake(input), expected, "{input}");
        }
    }

    #[test]
    fn event_type_syntax() {
        assert!(is_valid_event_type("TICKET_UPDATED"));
        assert!(is_valid_event_type("A1"));
        assert!(!is_valid_event_type(""));
        assert!(!is_valid_event_type("_A"));
        assert!(!is_valid_event_type("1A"));
        assert!(!is_valid_event_type("Ticket"));
        assert!(!is_valid_event_type("TICKET-UPDATED"));
    }

    #[test]
    fn rename_rules() {
        let cases = [
            ("lowercase", "tenant_id"),
            ("UPPERCASE", "TENANT_ID"),
            ("PascalCase", "TenantId"),
            ("camelCase", "tenantId"),
            ("snake_case", "tenant_id"),
            ("SCREAMING_SNAKE_CASE", "TENANT_ID"),
            ("kebab-case", "tenant-id"),
            ("SCREAMING-KEBAB-CASE", "TENANT-ID"),
        ];
        for (rule, expected) in cases {
            let rule = RenameRule::from_name(rule).expect("known rule");
            assert_eq!(rule.apply_to_field("tenant_id"), expected);
        }
        assert_eq!(RenameRule::from_name("Title Case"), None);
    }
}
