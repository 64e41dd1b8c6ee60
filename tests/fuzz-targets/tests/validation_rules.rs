//! Property tests of the validation rules `#[derive(Event)]` supports (`non_empty`, `length`,
//! `range`, `uuid`, `custom`, the tenant in both forms): a value inside a rule's bounds passes,
//! one outside fails, with the field's wire name as the path and the rule's message; through an
//! envelope decode the path is `payload.<field>` and the failure a validation failure.

use event_bus_core::transport::decode;
use event_bus_core::{Event, FailureKind};
use fuzz_targets::events::{AnyTenant, Rules};
use proptest::prelude::*;
use uuid::Uuid;

fn valid() -> Rules {
    Rules {
        tenant_id: Uuid::from_u128(7),
        name: "n".into(),
        code: "ab".into(),
        tags: vec![],
        labels: None,
        level: 0,
        ratio: 0.5,
        prio: None,
        reference: Uuid::from_u128(9).to_string(),
        parent: None,
        slug: "s".into(),
    }
}

/// The paths `validate` reports for `rules`, in field order.
fn paths(rules: &Rules) -> Vec<String> {
    match rules.validate() {
        Ok(()) => Vec::new(),
        Err(errors) => errors.issues().iter().map(|i| i.path.clone()).collect(),
    }
}

/// What the rules say, written independently of the generated code: the failing paths.
fn expected(r: &Rules) -> Vec<&'static str> {
    let mut out = Vec::new();
    if r.tenant_id.is_nil() {
        out.push("tenantId");
    }
    if r.name.is_empty() {
        out.push("name");
    }
    let code = r.code.chars().count();
    if !(2..=8).contains(&code) {
        out.push("code");
    }
    if r.tags.len() > 3 {
        out.push("tags");
    }
    if let Some(labels) = &r.labels {
        if labels.is_empty() {
            out.push("labels");
        }
        if labels.len() > 2 {
            out.push("labels");
        }
    }
    if !(-5..=5).contains(&r.level) {
        out.push("level");
    }
    if !(0.0..=1.0).contains(&r.ratio) {
        out.push("ratio");
    }
    if r.prio == Some(0) {
        out.push("priority");
    }
    if Uuid::try_parse(&r.reference).is_err() {
        out.push("reference");
    }
    if r.parent
        .as_deref()
        .is_some_and(|p| Uuid::try_parse(p).is_err())
    {
        out.push("parent");
    }
    if !r.slug.bytes().all(|b| b.is_ascii_lowercase()) {
        out.push("slug");
    }
    out
}

/// UUID text in every form the rule accepts.
fn uuid_text() -> impl Strategy<Value = String> {
    (any::<u128>(), 0..4u8).prop_map(|(n, form)| {
        let id = Uuid::from_u128(n);
        match form {
            0 => id.hyphenated().to_string(),
            1 => id.simple().to_string(),
            2 => id.braced().to_string(),
            _ => id
                .urn()
                .to_string()
                .to_uppercase()
                .replace("URN:UUID:", "urn:uuid:"),
        }
    })
}

fn labels() -> impl Strategy<Value = Option<serde_json::Map<String, serde_json::Value>>> {
    proptest::option::of(
        proptest::collection::btree_map("[a-z]{1,3}", any::<i32>(), 0..5)
            .prop_map(|m| m.into_iter().map(|(k, v)| (k, v.into())).collect()),
    )
}

fn ratio() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..=1.0f64,
        any::<f64>(),
        Just(f64::NAN),
        Just(-0.0),
        Just(1.0),
        Just(1.0 + f64::EPSILON),
    ]
}

prop_compose! {
    fn rules()(
        tenant in prop_oneof![Just(0u128), any::<u128>()],
        name in ".{0,3}",
        code in "\\PC{0,10}",
        tags in proptest::collection::vec(any::<u32>(), 0..6),
        labels in labels(),
        level in prop_oneof![-6..=6i64, any::<i64>()],
        ratio in ratio(),
        prio in proptest::option::of(any::<u8>()),
        reference in prop_oneof![uuid_text(), "[0-9a-z-]{0,40}"],
        parent in proptest::option::of(prop_oneof![uuid_text(), ".{0,8}"]),
        slug in prop_oneof!["[a-z]{0,6}", ".{0,6}"],
    ) -> Rules {
        Rules {
            tenant_id: Uuid::from_u128(tenant),
            name, code, tags, labels, level, ratio, prio, reference, parent, slug,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_rule_fails_exactly_outside_its_bounds(r in rules()) {
        prop_assert_eq!(paths(&r), expected(&r));
    }

    #[test]
    fn lengths_count_characters(code in "\\PC{0,12}") {
        let n = code.chars().count();
        let r = Rules { code, ..valid() };
        let errors = r.validate().err();
        let messages: Vec<String> = errors.iter().flat_map(|e| e.issues()).map(|i| i.message.clone()).collect();
        if n < 2 {
            prop_assert_eq!(messages, vec![format!("length {n} is below the minimum 2")]);
        } else if n > 8 {
            prop_assert_eq!(messages, vec![format!("length {n} is above the maximum 8")]);
        } else {
            prop_assert!(messages.is_empty());
        }
    }

    #[test]
    fn ranges_are_inclusive_and_name_the_bound(level in any::<i64>()) {
        let r = Rules { level, ..valid() };
        let messages: Vec<String> = r.validate().err().iter().flat_map(|e| e.issues()).map(|i| i.message.clone()).collect();
        if level < -5 {
            prop_assert_eq!(messages, vec![format!("{level} is below the minimum -5")]);
        } else if level > 5 {
            prop_assert_eq!(messages, vec![format!("{level} is above the maximum 5")]);
        } else {
            prop_assert!(messages.is_empty());
        }
    }

    #[test]
    fn a_decoded_envelope_reports_payload_paths(r in rules()) {
        // JSON has no NaN or infinity: those are decode errors, not validation ones.
        prop_assume!(r.ratio.is_finite());
        let json = format!(
            r#"{{"id":"{}","eventType":"FUZZ_RULES","timestamp":"2026-11-26T18:00:00.000Z","payload":{}}}"#,
            Uuid::from_u128(1),
            serde_json::to_string(&r).unwrap_or_default()
        );
        let want = expected(&r);
        match decode::<Rules>(json.as_bytes()) {
            Ok(envelope) => {
                prop_assert!(want.is_empty(), "{:?} passed", want);
                prop_assert_eq!(envelope.payload, r);
            }
            Err(failure) => {
                prop_assert_eq!(failure.kind, FailureKind::Validation);
                let issues: Vec<&str> = failure.message.split("; ").collect();
                prop_assert_eq!(issues.len(), want.len());
                for (issue, path) in issues.iter().zip(&want) {
                    let prefix = format!("payload.{path}: ");
                    prop_assert!(issue.starts_with(&prefix), "{} does not start with {}", issue, prefix);
                }
            }
        }
    }

    #[test]
    fn an_any_string_tenant_is_any_non_empty_text(tenant in ".{0,40}") {
        let e = AnyTenant { tenant_id: tenant.clone(), note: None };
        let result = e.validate();
        if tenant.is_empty() {
            let errors = result.err().unwrap_or_default();
            prop_assert_eq!(errors.issues().len(), 1);
            prop_assert_eq!(&errors.issues()[0].path, "tenantId");
        } else {
            prop_assert!(result.is_ok());
            prop_assert!(!e.tenant_id().is_nil());
            if let Ok(id) = Uuid::try_parse(&tenant) {
                prop_assert_eq!(e.tenant_id(), id);
            }
        }
    }
}

#[test]
fn the_nil_tenant_and_a_nil_reference_text() {
    let r = Rules {
        tenant_id: Uuid::nil(),
        reference: Uuid::nil().to_string(),
        ..valid()
    };
    let errors = r.validate().err().unwrap_or_default();
    assert_eq!(
        errors.to_string(),
        "tenantId: tenant must not be the nil UUID"
    );
}

/// Found by `every_rule_fails_exactly_outside_its_bounds`: NaN was reported twice, as below the
/// minimum and above the maximum.
#[test]
fn nan_is_one_issue() {
    let r = Rules {
        ratio: f64::NAN,
        ..valid()
    };
    let errors = r.validate().err().unwrap_or_default();
    assert_eq!(errors.to_string(), "ratio: NaN is not a number in range");
}

/// Found by `a_decoded_envelope_reports_payload_paths`: without serde_json's `float_roundtrip`,
/// a float written to an envelope could read back one unit in the last place off.
#[test]
fn floats_read_back_exactly() {
    let r = Rules {
        ratio: 4.873_012_610_542_697e-234,
        ..valid()
    };
    let json = serde_json::to_string(&r).unwrap_or_default();
    let back: Rules = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.ratio.to_bits(), r.ratio.to_bits());
}
