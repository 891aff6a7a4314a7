//! The state bucket's key layout, in one place: CFE's state file, this project's history and
//! cluster lock (the template's IAM policy and lifecycle rules name the same prefix).

use chrono::{DateTime, Utc};

use crate::engine::declaration::{Declaration, DEFAULT_CLUSTER};

/// Folder of everything written to the state bucket (CFE's `STORAGE_FOLDER_NAME`).
pub const PREFIX: &str = "f5cloudfailover";

/// Key of the state file: where CFE keeps it for the default cluster, under the cluster's
/// name for a named one (so clusters sharing a bucket do not share a state file).
pub fn state_key(decl: &Declaration) -> String {
    state_object(
        &decl.extension.cluster_name,
        &decl.external_storage.state_file_name,
    )
}

/// Key of the state file `file` of `cluster` (see [`state_key`]).
pub fn state_object(cluster: &str, file: &str) -> String {
    match cluster {
        DEFAULT_CLUSTER => format!("{PREFIX}/{file}"),
        cluster => format!("{PREFIX}/{cluster}/{file}"),
    }
}

/// Prefix of a cluster's history objects.
pub fn history_prefix(cluster: &str) -> String {
    format!("{PREFIX}/history/{cluster}/")
}

/// Key of a run's history object (sorts by time).
pub fn history_key(cluster: &str, started_at: DateTime<Utc>, run_id: &str) -> String {
    format!(
        "{}{}-{run_id}.json",
        history_prefix(cluster),
        started_at.format("%Y%m%dT%H%M%S%.3fZ"),
    )
}

/// Key of the cluster's lock object.
pub fn lock_key(cluster: &str) -> String {
    format!("{PREFIX}/lock/{cluster}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_cfes_for_the_default_cluster() {
        // Spelled out once: CFE reads and writes exactly this state file.
        let text = include_str!("../../../../examples/seed-article/declaration-after.json");
        let mut decl = Declaration::parse(text).unwrap();
        assert_eq!(
            state_key(&decl),
            "f5cloudfailover/f5cloudfailoverstate.json"
        );
        decl.extension.cluster_name = "pair-2".into();
        assert_eq!(
            state_key(&decl),
            "f5cloudfailover/pair-2/f5cloudfailoverstate.json"
        );
        assert_eq!(lock_key("default"), "f5cloudfailover/lock/default.json");
        let at = DateTime::parse_from_rfc3339("2025-07-17T15:38:42.875Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            history_key("default", at, "0123456789abcdef"),
            "f5cloudfailover/history/default/20250717T153842.875Z-0123456789abcdef.json"
        );
    }
}
