//! A delivery guid as a user gives it, whole or as the feed shortens it (`5c1e0a80…`): one resolver for
//! `replay --guid` and `trigger redeliver`.

use github::DeliveryItem;

use crate::exit::{USAGE, fail};

/// Whether `wanted` names `guid`: the whole guid, or as the feed shows it (its first 8 or more
/// characters, with or without the `…`), in any letter case.
pub fn matches(guid: &str, wanted: &str) -> bool {
    let wanted = wanted.trim().trim_end_matches('…');
    if wanted.len() < 8 || wanted.len() > guid.len() || !guid.is_char_boundary(wanted.len()) {
        return guid.eq_ignore_ascii_case(wanted);
    }
    guid[..wanted.len()].eq_ignore_ascii_case(wanted)
}

/// Whether `wanted` is `guid` whole, so that no other delivery can match it.
pub fn is_whole(guid: &str, wanted: &str) -> bool {
    guid.eq_ignore_ascii_case(wanted.trim())
}

/// Fails when the deliveries `wanted` matched carry more than one guid: a shortened guid must name one.
pub fn check_one<'a>(wanted: &str, matched: impl IntoIterator<Item = &'a DeliveryItem>) -> anyhow::Result<()> {
    let mut guids: Vec<&str> = matched.into_iter().map(|item| item.guid.as_str()).collect();
    guids.sort_unstable();
    guids.dedup();
    if guids.len() > 1 {
        return Err(fail(
            USAGE,
            format!(
                "the guid {wanted} matches {} deliveries ({}); give more of it",
                guids.len(),
                guids.iter().take(3).copied().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guid_matches_whole_or_as_the_feed_shortens_it() {
        let guid = "5c1e0a80-8ab3-11ef-9e1b-2c5e0a5e43a1";
        assert!(matches(guid, guid));
        assert!(matches(guid, "5c1e0a80…"));
        assert!(matches(guid, "5C1E0A80-8ab3"));
        assert!(!matches(guid, "5c1e0a8"), "fewer than 8 characters must be whole");
        assert!(!matches(guid, "5c1e0a81"));
        assert!(!matches(guid, &format!("{guid}0")));
        assert!(is_whole(guid, &guid.to_uppercase()) && !is_whole(guid, "5c1e0a80…"));
    }
}
