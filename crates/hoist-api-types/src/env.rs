use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `PATCH /v1/services/{name}/env`: a change to a service's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvChange {
    /// Variables to set (added or replaced).
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Names to remove; naming one that is not set is an error (a typo must not pass).
    #[serde(default)]
    pub unset: Vec<String>,
}

/// What an environment change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnvApplied {
    /// The variable names now set for the service.
    pub names: Vec<String>,
    pub revision: u64,
    /// False when the change left the environment as it was (nothing was restarted).
    pub changed: bool,
    /// Running instances replaced by ones with the new environment.
    pub replaced: usize,
}

/// `GET /v1/services/{name}/env` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EnvQuery {
    /// Include the values (they are secrets: listings show names only by default).
    #[serde(default)]
    pub reveal: bool,
}

/// A service's environment: names, and values when asked for with `reveal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnvList {
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, String>>,
}
