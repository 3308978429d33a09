//! The text form of enums whose names strum derives: one place that turns text back into a
//! variant, with an error that lists the allowed values (so the list can never go stale).

use crate::SpecError;

/// The variant of `T` whose text form is `text`, or an error naming `field` and every allowed
/// value in declaration order.
pub fn parse_variant<T>(field: &'static str, text: &str) -> Result<T, SpecError>
where
    T: strum::VariantArray + strum::VariantNames + Copy + Into<&'static str>,
{
    <T as strum::VariantArray>::VARIANTS
        .iter()
        .copied()
        .find(|v| (*v).into() == text)
        .ok_or_else(|| {
            SpecError::invalid(
                field,
                text,
                format!("must be one of {}", variant_list::<T>()),
            )
        })
}

/// `a, b, c`: every text form of `T`, for messages and help.
pub fn variant_list<T: strum::VariantNames>() -> String {
    <T as strum::VariantNames>::VARIANTS.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeploymentState, EventKind, InstanceState};

    #[test]
    fn every_variant_parses_back_and_the_error_lists_them_all() {
        fn check<T>(field: &'static str, all: &[T])
        where
            T: strum::VariantArray
                + strum::VariantNames
                + Copy
                + Into<&'static str>
                + PartialEq
                + std::fmt::Debug
                + std::fmt::Display,
        {
            let names: Vec<&str> = all.iter().map(|v| (*v).into()).collect();
            for v in all {
                assert_eq!(parse_variant::<T>(field, &v.to_string()).unwrap(), *v);
            }
            let msg = parse_variant::<T>(field, "nope").unwrap_err().to_string();
            assert_eq!(
                msg,
                format!(
                    "invalid {field} 'nope': must be one of {}",
                    names.join(", ")
                )
            );
        }
        check("deployment state", DeploymentState::ALL);
        check("instance state", InstanceState::ALL);
        check("event kind", EventKind::ALL);
    }
}
