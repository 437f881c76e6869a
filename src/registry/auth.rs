//! Credentials from the user's Docker configuration, as `docker login`
//! leaves them: `$DOCKER_CONFIG/config.json` (default `~/.docker`), its
//! `auths` entries (base64 `auth`, or `username`/`password`), `credHelpers`
//! per registry and `credsStore` through `docker-credential-*` programs.
//! Read with the `docker_credential` crate. A credential is only ever sent
//! in a request header: no message, log line or error shows it.

use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;

/// Where a registry's credentials came from, for messages (never the secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AuthSource {
    /// A username and password from the Docker config or a helper.
    DockerConfig {
        /// The user name (not secret).
        username: String,
    },
    /// Nothing configured for this registry: anonymous.
    Anonymous,
}

/// The key Docker uses for a registry host in `config.json` and with
/// credential helpers (Docker Hub is `https://index.docker.io/v1/`).
pub(crate) fn server_key(host: &str) -> String {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://index.docker.io/v1/".to_owned()
        }
        other => other.to_owned(),
    }
}

/// The credentials for `host` (`host[:port]`), and warnings (a helper that
/// failed, an identity token strata cannot use). Missing configuration is
/// anonymous access, not an error.
pub(crate) fn credentials(host: &str) -> (RegistryAuth, AuthSource, Vec<String>) {
    let mut warnings = Vec::new();
    match docker_credential::get_credential(&server_key(host)) {
        Ok(DockerCredential::UsernamePassword(u, p)) => {
            let source = AuthSource::DockerConfig {
                username: u.clone(),
            };
            return (RegistryAuth::Basic(u, p), source, warnings);
        }
        Ok(DockerCredential::IdentityToken(_)) => warnings.push(format!(
            "the Docker config has an identity token for {host}, which strata cannot use: pushing and pulling anonymously (run `docker login {host}` with a password or token)"
        )),
        Err(
            CredentialRetrievalError::ConfigNotFound
            | CredentialRetrievalError::ConfigReadError
            | CredentialRetrievalError::NoCredentialConfigured,
        ) => {}
        Err(e) => warnings.push(format!(
            "cannot read the credentials for {host} from the Docker config: {e}; going on anonymously"
        )),
    }
    (RegistryAuth::Anonymous, AuthSource::Anonymous, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_key_is_dockers() {
        assert_eq!(server_key("index.docker.io"), "https://index.docker.io/v1/");
        assert_eq!(server_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn reads_auths_from_a_config_reader() {
        // The crate's reader path, with the shapes `docker login` writes.
        let conf = r#"{"auths":{"reg.example:5000":{"auth":"dXNlcjpzM2NyZXQ="}}}"#;
        let c = docker_credential::get_credential_from_reader(conf.as_bytes(), "reg.example:5000")
            .unwrap();
        assert_eq!(
            c,
            DockerCredential::UsernamePassword("user".into(), "s3cret".into())
        );
        let none = docker_credential::get_credential_from_reader(conf.as_bytes(), "other:5000");
        assert!(none.is_err());
    }
}
