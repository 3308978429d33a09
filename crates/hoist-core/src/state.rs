use crate::StateError;

/// Where a deployment is in its lifecycle.
#[cfg_attr(
    feature = "schema",
    derive(utoipa::ToSchema),
    schema(rename_all = "lowercase")
)]
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::VariantNames,
)]
#[strum(serialize_all = "lowercase")]
pub enum DeploymentState {
    Queued,
    Fetching,
    Building,
    Starting,
    /// Serving traffic. Not terminal: a newer deployment going live supersedes it.
    Live,
    Superseded,
    Failed,
    Cancelled,
}

text_enum!(DeploymentState, "deployment state");

impl DeploymentState {
    /// The pipeline is over: nothing happens to it by itself any more (a rollback can still
    /// make a superseded deployment live again).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            DeploymentState::Superseded | DeploymentState::Failed | DeploymentState::Cancelled
        )
    }

    /// Still on the way to going live (and so can still fail or be cancelled).
    pub fn is_in_progress(self) -> bool {
        matches!(
            self,
            DeploymentState::Queued
                | DeploymentState::Fetching
                | DeploymentState::Building
                | DeploymentState::Starting
        )
    }

    /// Whether the lifecycle allows `self -> next`.
    ///
    /// A live deployment cannot fail: once it has served traffic, a crash is an instance
    /// problem handled by restarts, and the deployment's record of having gone live must stay.
    pub fn can_transition_to(self, next: DeploymentState) -> bool {
        use DeploymentState::*;
        match (self, next) {
            (Queued, Fetching)
            | (Fetching, Building)
            | (Building, Starting)
            | (Starting, Live)
            | (Live, Superseded)
            // A rollback.
            | (Superseded, Live) => true,
            (from, Failed | Cancelled) => from.is_in_progress(),
            _ => false,
        }
    }

    pub fn transition(self, next: DeploymentState) -> Result<DeploymentState, StateError> {
        if self.can_transition_to(next) {
            Ok(next)
        } else {
            Err(StateError {
                from: self,
                to: next,
            })
        }
    }
}

/// Lifecycle of one running container of a service.
#[cfg_attr(
    feature = "schema",
    derive(utoipa::ToSchema),
    schema(rename_all = "lowercase")
)]
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::VariantNames,
)]
#[strum(serialize_all = "lowercase")]
pub enum InstanceState {
    Starting,
    Ready,
    /// Idle: its processes are held by the cgroup freezer, using no CPU, memory kept.
    Frozen,
    Stopping,
    Stopped,
    Failed,
}

text_enum!(InstanceState, "instance state");

#[cfg(test)]
mod tests {
    use super::DeploymentState::*;
    use super::*;

    #[test]
    fn deployment_str_roundtrip() {
        for &state in DeploymentState::ALL {
            assert_eq!(state.as_str().parse::<DeploymentState>().unwrap(), state);
            assert_eq!(state.to_string(), state.as_str());
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(
                serde_json::from_str::<DeploymentState>(&json).unwrap(),
                state
            );
        }
        let err = "Live".parse::<DeploymentState>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid deployment state 'Live'")
        );
        assert!(serde_json::from_str::<DeploymentState>("\"done\"").is_err());
    }

    #[test]
    fn terminal_states() {
        let terminal: Vec<_> = DeploymentState::ALL
            .iter()
            .copied()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, vec![Superseded, Failed, Cancelled]);
        assert!(!Live.is_terminal());
    }

    #[test]
    fn allowed_transitions() {
        let allowed = [
            (Queued, Fetching),
            (Fetching, Building),
            (Building, Starting),
            (Starting, Live),
            (Live, Superseded),
            (Superseded, Live),
            (Queued, Failed),
            (Fetching, Failed),
            (Building, Failed),
            (Starting, Failed),
            (Queued, Cancelled),
            (Fetching, Cancelled),
            (Building, Cancelled),
            (Starting, Cancelled),
        ];
        for &from in DeploymentState::ALL {
            for &to in DeploymentState::ALL {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.can_transition_to(to), expected, "{from} -> {to}");
                assert_eq!(from.transition(to).is_ok(), expected);
            }
        }
        // Terminal states go nowhere, but for a rollback making a superseded one live.
        for &from in DeploymentState::ALL.iter().filter(|s| s.is_terminal()) {
            assert!(
                DeploymentState::ALL
                    .iter()
                    .copied()
                    .all(|to| !from.can_transition_to(to) || (from, to) == (Superseded, Live))
            );
        }
    }

    #[test]
    fn transition_error() {
        assert_eq!(Queued.transition(Fetching), Ok(Fetching));
        let err = Live.transition(Failed).unwrap_err();
        assert_eq!(
            err,
            StateError {
                from: Live,
                to: Failed
            }
        );
        assert_eq!(err.to_string(), "deployment cannot go from live to failed");
        assert_eq!(
            Queued.transition(Live).unwrap_err().to_string(),
            "deployment cannot go from queued to live"
        );
    }

    #[test]
    fn instance_str_roundtrip() {
        for &state in InstanceState::ALL {
            assert_eq!(state.as_str().parse::<InstanceState>().unwrap(), state);
            assert_eq!(state.to_string(), state.as_str());
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(serde_json::from_str::<InstanceState>(&json).unwrap(), state);
        }
        let err = "running".parse::<InstanceState>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid instance state 'running'")
        );
    }
}
