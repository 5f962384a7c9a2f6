//! Tests of the detection rules and the mapping: realistic positives and negatives.

use super::*;

fn secret() -> Secret {
    Secret([7; 32])
}

fn privacy(policy: PiiPolicy, all_ids: bool, secret: &Secret) -> Privacy<'_> {
    Privacy {
        policy,
        all_ids,
        secret: Some(secret),
    }
}

#[test]
fn emails_are_detected_anywhere_in_a_value_and_near_misses_are_not() {
    for email in [
        "bob@example.com",
        "alice@example.co.uk",
        "Alice.Smith+billing@Example.COM",
        "user:bob@corp.com",
        "o'brien@example.ie",
        "jürgen@beispiel.de",
        "x@xn--bcher-kva.example",
    ] {
        assert_eq!(detect(email), Some(Personal::Email), "{email}");
    }
    for not_email in [
        "user_123",
        "123e4567-e89b-12d3-a456-426614174000",
        "acme-corp",
        "tenant@v2",
        "team@acme-corp",
        "@example.com",
        "bob@.com",
        "bob@example.c",
        "bob@example.123",
        "bob@-example.com",
        "summarize@v4.2",
    ] {
        assert_eq!(detect(not_email), None, "{not_email}");
    }
}

#[test]
fn phones_need_a_plus_or_ten_digits_with_separators() {
    for phone in [
        "+1 415 555 0100",
        "+14155550100",
        "+44 20 7946 0958",
        "(415) 555-0100",
        "415-555-0100",
        "415.555.0100",
        "06 12 34 56 78",
        "00 44 20 7946 0958",
    ] {
        assert_eq!(detect(phone), Some(Personal::Phone), "{phone}");
    }
    for not_phone in [
        "12345678",
        "4155550100",
        "2024-01-05",
        "1.2.3",
        "+15",
        "+1234567890123456",
        "v2-2024-01",
        "user_4155550100",
        "415-555-0100 ext 2",
    ] {
        assert_eq!(detect(not_phone), None, "{not_phone}");
    }
}

#[test]
fn pseudonyms_are_stable_prefixed_and_shared_by_spellings_of_one_person() {
    let s = secret();
    let p = privacy(PiiPolicy::Pseudonymize, false, &s);
    let bob = p
        .map("tenantId", "bob@example.com", Slot::Id)
        .unwrap()
        .unwrap();
    assert!(is_pseudonym(&bob), "{bob}");
    assert_eq!(bob.len(), 24);
    assert_eq!(
        p.map("userId", " Bob@Example.COM", Slot::Id).unwrap(),
        Some(bob.clone())
    );
    assert_eq!(
        p.map("userId", "+1 415 555 0100", Slot::Id).unwrap(),
        p.map("userId", "+1 (415) 555-0100", Slot::Id).unwrap()
    );
    // Another workspace's secret gives another pseudonym.
    let other = Secret([8; 32]);
    assert_ne!(
        privacy(PiiPolicy::Pseudonymize, false, &other)
            .map("tenantId", "bob@example.com", Slot::Id)
            .unwrap(),
        Some(bob.clone())
    );
    // A pseudonym sent again is kept, not pseudonymized twice.
    assert_eq!(p.map("tenantId", &bob, Slot::Id).unwrap(), None);
    assert_eq!(p.map("tenantId", "acme-corp", Slot::Id).unwrap(), None);
}

#[test]
fn reject_names_the_field_and_never_the_value() {
    let s = secret();
    let p = privacy(PiiPolicy::Reject, false, &s);
    let e = p.map("userId", "bob@example.com", Slot::Id).unwrap_err();
    assert_eq!(e.field, "userId");
    assert!(e.message.contains("an e-mail address"), "{}", e.message);
    assert!(!e.message.contains("bob"), "{}", e.message);
    assert_eq!(p.map("userId", "user_123", Slot::Id).unwrap(), None);
}

#[test]
fn allow_keeps_personal_values_unless_every_id_is_pseudonymized() {
    let s = secret();
    let allow = privacy(PiiPolicy::Allow, false, &s);
    assert_eq!(
        allow.map("userId", "bob@example.com", Slot::Id).unwrap(),
        None
    );
    let every = privacy(PiiPolicy::Allow, true, &s);
    assert!(every.map("userId", "user_123", Slot::Id).unwrap().is_some());
    // The opt-in covers ids, not tag values.
    assert_eq!(
        every.map("tags.team", "search", Slot::TagValue).unwrap(),
        None
    );
}

#[test]
fn without_a_secret_a_value_to_pseudonymize_is_refused_not_stored() {
    let p = Privacy {
        policy: PiiPolicy::Pseudonymize,
        all_ids: false,
        secret: None,
    };
    assert!(p.map("tenantId", "bob@example.com", Slot::Id).is_err());
    assert_eq!(p.map("tenantId", "acme", Slot::Id).unwrap(), None);
}

#[test]
fn filters_on_a_personal_value_also_match_its_pseudonym() {
    let s = secret();
    let p = privacy(PiiPolicy::Pseudonymize, false, &s);
    let mut f = Filters::default();
    f.text.insert(
        Dimension::TenantId,
        vec!["bob@example.com".into(), "acme".into()],
    );
    f.tags.insert("owner".into(), vec!["+14155550100".into()]);
    p.widen_filters(&mut f);
    let bob = s.pseudonym("bob@example.com");
    assert_eq!(
        f.text[&Dimension::TenantId],
        vec!["bob@example.com".to_string(), "acme".into(), bob]
    );
    assert_eq!(f.tags["owner"].len(), 2);
    assert_eq!(f.tags["owner"][1], s.pseudonym("+14155550100"));
}

#[test]
fn the_secret_never_shows_in_debug_output() {
    assert_eq!(format!("{:?}", secret()), "Secret(..)");
}

#[test]
fn only_a_value_to_pseudonymize_needs_the_secret() {
    let s = secret();
    let p = privacy(PiiPolicy::Pseudonymize, false, &s);
    assert!(p.needs_secret("bob@example.com", Slot::Id));
    assert!(!p.needs_secret("acme", Slot::Id));
    assert!(!p.needs_secret(&s.pseudonym("bob@example.com"), Slot::Id));
    assert!(!privacy(PiiPolicy::Reject, false, &s).needs_secret("bob@example.com", Slot::Id));
    assert!(!privacy(PiiPolicy::Allow, false, &s).needs_secret("bob@example.com", Slot::Id));
    let every = privacy(PiiPolicy::Allow, true, &s);
    assert!(every.needs_secret("acme", Slot::Id));
    assert!(!every.needs_secret("acme", Slot::TagValue));
}
