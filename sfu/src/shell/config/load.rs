//! Reading the configuration: the TOML file, then `MEET_<KEY>` from the
//! environment, which takes lists as TOML or separated by commas.

use std::path::Path;

use super::{Config, ConfigError, ENV_PREFIX};

/// Keys whose values are lists: from the environment either TOML
/// (`["a", "b"]`) or separated by commas (`a,b`).
const LIST_KEYS: &[&str] = &[
    "media_ips",
    "srtp_profiles",
    "widget_origins",
    "turn_urls",
    "trusted_proxies",
    "allowed_hosts",
];

/// An environment variable's value as the TOML value of `key`. A value
/// that parses as TOML (a number, a boolean, an array, a table) is taken
/// as such; anything else is a string. Keys that are always strings take
/// the value as it is (a password may look like a number); list keys also
/// take a comma-separated list.
fn env_value(key: &str, value: String) -> toml::Value {
    if STRING_KEYS.contains(&key) {
        return toml::Value::String(value);
    }
    if LIST_KEYS.contains(&key) && !value.trim_start().starts_with('[') {
        let items = value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| toml::Value::String(v.to_owned()));
        return toml::Value::Array(items.collect());
    }
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or(toml::Value::String(value))
}

/// Keys whose environment values are never read as TOML.
const STRING_KEYS: &[&str] = &[
    "public_url",
    "matrix_homeserver",
    "matrix_user",
    "matrix_password",
    "matrix_store",
    "policy_store",
    "tls_certificate",
    "tls_private_key",
    "token_secret",
    "matrix_as_token",
    "matrix_as_prefix",
    "matrix_admin_token",
    "log_format",
    "admin_key",
    "turn_secret",
    "turn_ca_file",
    "redis",
    "node_id",
    "node_url",
];

impl Config {
    /// Loads the file (if any), applies the environment, and validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        let mut from_env = Vec::new();
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            table.insert(key.clone(), env_value(&key, value));
            from_env.push(key);
        }
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let inner = e.inner().to_string();
                // An unknown key is named at the top (".") by serde.
                let key = match e.path().to_string() {
                    p if p == "." => from_env
                        .iter()
                        .find(|k| inner.contains(&format!("`{k}`")))
                        .cloned(),
                    p => Some(p),
                };
                match key {
                    Some(k) if from_env.contains(&k) => ConfigError::Parse(format!(
                        "key `{k}` (from the environment, {ENV_PREFIX}{}): {inner}",
                        k.to_ascii_uppercase()
                    )),
                    Some(k) => ConfigError::Parse(format!("key `{k}`: {inner}")),
                    None => ConfigError::Parse(inner),
                }
            })?;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::super::{env, SrtpProfile};
    use super::*;

    #[test]
    fn lists_from_the_environment_take_commas_or_toml() {
        let c = Config::load(
            None,
            env(&[
                ("MEET_MEDIA_IPS", "10.0.0.1, 10.0.0.2"),
                ("MEET_TRUSTED_PROXIES", r#"["10.0.0.9"]"#),
                ("MEET_TURN_URLS", "turn:10.0.0.1:3478?transport=udp"),
                ("MEET_TURN_SECRET", "0123456789abcdef0123456789abcdef"),
            ]),
        )
        .unwrap();
        let ips: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        assert_eq!(c.media_ips, ips);
        assert_eq!(
            c.trusted_proxies,
            vec!["10.0.0.9".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(c.turn_urls, ["turn:10.0.0.1:3478?transport=udp"]);
        let e = Config::load(None, env(&[("MEET_MEDIA_IPS", "10.0.0.1,nonsense")])).unwrap_err();
        assert!(e.to_string().contains("media_ips"), "{e}");
    }

    #[test]
    fn an_unknown_environment_variable_is_named() {
        let e = Config::load(None, env(&[("MEET_MEDIA_PROT", "40000")])).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("MEET_MEDIA_PROT") && e.contains("media_prot"),
            "{e}"
        );
    }

    #[test]
    fn env_overrides_file() {
        let dir = std::env::temp_dir().join(format!("meet-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "media_port = 40000\nworkers = 2\n").unwrap();
        let c = Config::load(
            Some(&path),
            env(&[
                ("MEET_WORKERS", "3"),
                ("MEET_PUBLIC_IP", "203.0.113.7"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.media_port, 40000);
        assert_eq!(c.workers, 3);
        assert_eq!(c.public_ip, Some("203.0.113.7".parse().unwrap()));
    }

    #[test]
    fn srtp_profiles_parse() {
        let c = Config::load(
            None,
            env(&[("MEET_SRTP_PROFILES", r#"["aes128_cm_hmac_sha1_80"]"#)]),
        )
        .unwrap();
        assert_eq!(c.srtp_profiles, vec![SrtpProfile::Aes128CmHmacSha1_80]);
        let e = Config::load(None, env(&[("MEET_SRTP_PROFILES", "[]")])).unwrap_err();
        assert!(e.to_string().contains("srtp_profiles"), "{e}");
        let e = Config::load(None, env(&[("MEET_SRTP_PROFILES", r#"["rot13"]"#)])).unwrap_err();
        assert!(e.to_string().contains("srtp_profiles"), "{e}");
    }
}
