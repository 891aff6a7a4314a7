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
