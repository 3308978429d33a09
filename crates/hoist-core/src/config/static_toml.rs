//! hoist.toml's `static`: a folder (`static = "dist"`) or a table
//! (`[static]` with `dir`, `prefix`, `spa`), each key checked with Hoist's own words.

use crate::{SpecError, StaticDir, StaticLayer, StaticPrefix};

use super::key_error;

const FILE: &str = "hoist.toml";
const TABLE_KEYS: [&str; 3] = ["dir", "prefix", "spa"];

pub(super) fn static_layer(value: &toml::Value) -> Result<StaticLayer, SpecError> {
    use toml::Value;
    let file_error = |message: String| SpecError::file(FILE, message);
    match value {
        Value::String(dir) => Ok(StaticLayer {
            dir: Some(StaticDir::new(dir).map_err(key_error(FILE, "static"))?),
            ..StaticLayer::default()
        }),
        Value::Table(table) => {
            if let Some(key) = table.keys().find(|k| !TABLE_KEYS.contains(&k.as_str())) {
                return Err(file_error(format!(
                    "[static]: unknown key `{}`; expected one of {}",
                    crate::echo(key),
                    TABLE_KEYS.join(", ")
                )));
            }
            let string = |key: &str| -> Result<Option<String>, SpecError> {
                match table.get(key) {
                    None => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(other) => Err(file_error(format!(
                        "[static]: key `{key}`: must be a string, got {}",
                        other.type_str()
                    ))),
                }
            };
            let dir = string("dir")?
                .map(|d| StaticDir::new(&d))
                .transpose()
                .map_err(key_error(FILE, "static.dir"))?;
            let prefix = string("prefix")?
                .map(|p| StaticPrefix::new(&p))
                .transpose()
                .map_err(key_error(FILE, "static.prefix"))?;
            let spa = match table.get("spa") {
                None => None,
                Some(Value::Boolean(b)) => Some(*b),
                Some(other) => {
                    return Err(file_error(format!(
                        "[static]: key `spa`: must be true or false, got {}",
                        other.type_str()
                    )));
                }
            };
            if dir.is_none() {
                return Err(file_error(
                    "[static]: key `dir` is missing: name the folder the build leaves the files in (e.g. dir = \"dist\")".into(),
                ));
            }
            Ok(StaticLayer { dir, prefix, spa })
        }
        other => Err(file_error(format!(
            "key `static`: must be a folder (\"dist\") or a table ([static] with dir, prefix, spa), got {}",
            other.type_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use crate::SpecLayer;

    #[test]
    fn a_folder_or_a_table() {
        let layer = SpecLayer::from_hoist_toml("static = \"dist\"\n").unwrap();
        assert_eq!(layer.static_files.dir.unwrap().as_str(), "dist");
        let layer = SpecLayer::from_hoist_toml(
            "[static]\ndir = \"web/build\"\nprefix = \"/app\"\nspa = true\n",
        )
        .unwrap();
        let s = layer.static_files.resolve().unwrap().unwrap();
        assert_eq!(
            (s.dir.as_str(), s.prefix.as_str(), s.spa),
            ("web/build", "/app", true)
        );
    }

    #[test]
    fn bad_static_settings_name_the_key() {
        for (text, expected) in [
            ("static = \"../x\"", "key `static`: invalid static '../x'"),
            ("static = \"/srv\"", "absolute"),
            ("static = 1", "key `static`: must be a folder"),
            (
                "[static]\ndir = \"d\"\nprefix = \"x\"",
                "key `static.prefix`: invalid static_prefix 'x': must start with '/'",
            ),
            (
                "[static]\ndir = \"d\"\nspa = \"yes\"",
                "key `spa`: must be true or false",
            ),
            ("[static]\ndir = 3", "key `dir`: must be a string"),
            ("[static]\nspa = true", "key `dir` is missing"),
            (
                "[static]\ndir = \"d\"\nfolder = \"x\"",
                "unknown key `folder`",
            ),
        ] {
            let msg = SpecLayer::from_hoist_toml(text).unwrap_err().to_string();
            assert!(msg.starts_with("hoist.toml: "), "{text}: {msg}");
            assert!(msg.contains(expected), "{text}: {msg}");
        }
    }
}
