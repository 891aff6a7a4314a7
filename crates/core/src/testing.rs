//! Fixtures shared by more than one module's tests.

/// The seed article's declaration, as parsed by the declaration tests.
pub(crate) mod declaration {
    use serde_json::Value;

    use crate::declaration::{Declaration, DeclarationError};

    /// The seed article's declaration after the fix (A and B, one route table, one EIP).
    pub(crate) const AFTER: &str =
        include_str!("../../../examples/seed-article/declaration-after.json");

    /// [`AFTER`] with `patch` applied, validated.
    pub(crate) fn with(patch: impl FnOnce(&mut Value)) -> Result<Declaration, DeclarationError> {
        let mut v: Value = serde_json::from_str(AFTER).unwrap();
        patch(&mut v);
        Declaration::from_value(&v)
    }
}

/// The sample events of `events/` and the function's home they come from.
pub(crate) mod events {
    use crate::declaration::Extension;
    use crate::events::{parse_text, Home, Intent, Trigger, Trust};

    const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

    /// A file of the repository; a sample event's times moved to now (`lab::fresh`).
    pub(crate) fn file(rel: &str) -> String {
        let text = std::fs::read_to_string(format!("{ROOT}/{rel}"))
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        crate::lab::fresh(&text)
    }

    pub(crate) fn sample(name: &str) -> Trigger {
        parse_text(&file(&format!("events/{name}"))).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    pub(crate) fn home() -> Trust {
        Trust::at(Home {
            account: "123456789012".into(),
            region: "us-east-1".into(),
        })
    }

    pub(crate) fn intent(name: &str) -> Intent {
        sample(name).intent(&Extension::default(), &home())
    }

    pub(crate) fn reason(i: Intent) -> String {
        match i {
            Intent::Ignore { reason } => reason,
            other => panic!("expected an Ignore, got {other:?}"),
        }
    }

    pub(crate) const A: &str = "i-055fd78af29715fbf";
    pub(crate) const B: &str = "i-061cbb31a5158ad30";

    /// A forged SNS alarm: another account and region, a name outside the stack's prefix.
    pub(crate) fn forged_sns(account: &str, region: &str, name: &str) -> Trigger {
        let text = file("events/alarm-sns.json")
            .replace("123456789012", account)
            .replace("us-east-1", region)
            .replace("cloud-failover-i-055fd78af29715fbf-status", name);
        parse_text(&text).unwrap()
    }
}
