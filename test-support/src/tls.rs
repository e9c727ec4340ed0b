use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Error;

/// A throwaway certificate authority, with a server certificate for `127.0.0.1` and `localhost`
/// and a client certificate it signed, made by the `openssl` command line (P-256 keys, valid two
/// days) in a temporary folder that is removed when the last clone is dropped.
///
/// ```
/// use fluxgate_test_support::TestCa;
///
/// let ca = TestCa::generate()?;
/// assert!(ca.ca_pem().starts_with(b"-----BEGIN CERTIFICATE-----"));
/// assert!(ca.server_cert().exists() && ca.server_key().exists());
/// # Ok::<(), fluxgate_test_support::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TestCa {
    dir: Arc<TempDir>,
}

#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `[v3]` extensions of the certificates the CA signs.
const EXTENSIONS: &str = "basicConstraints=critical,CA:FALSE\n\
    keyUsage=critical,digitalSignature,keyEncipherment\n\
    extendedKeyUsage=serverAuth,clientAuth\n\
    subjectAltName=IP:127.0.0.1,DNS:localhost\n";

impl TestCa {
    /// Makes the CA and its certificates.
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] when `openssl` cannot run, [`Error::Tls`] when it fails.
    pub fn generate() -> Result<Self, Error> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "fluxgate-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = TempDir(std::env::temp_dir().join(name));
        std::fs::create_dir_all(&dir.0).map_err(|e| Error::Tls(e.to_string()))?;
        std::fs::write(dir.0.join("ext.cnf"), EXTENSIONS).map_err(|e| Error::Tls(e.to_string()))?;
        let p256 = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        let ca_ext = "-addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign";
        openssl(
            &dir.0,
            &format!("req -x509 -days 2 {p256} {ca_ext} -keyout ca.key -out ca.crt"),
            &["-subj", "/CN=FluxGate test CA"],
        )?;
        for who in ["server", "client"] {
            let subject = format!("/CN=fluxgate-test-{who}");
            let request = format!("req {p256} -keyout {who}.key -out {who}.csr");
            openssl(&dir.0, &request, &["-subj", &subject])?;
            let sign = format!(
                "x509 -req -days 2 -in {who}.csr -out {who}.crt -CA ca.crt -CAkey ca.key \
                 -CAcreateserial -extfile ext.cnf"
            );
            openssl(&dir.0, &sign, &[])?;
        }
        Ok(Self { dir: Arc::new(dir) })
    }

    /// The folder holding the files.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// The CA's certificate (`ca.crt`), for `--tls-ca-cert-file`.
    #[must_use]
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.0.join("ca.crt")
    }

    /// The server's certificate (`server.crt`, for `127.0.0.1` and `localhost`).
    #[must_use]
    pub fn server_cert(&self) -> PathBuf {
        self.dir.0.join("server.crt")
    }

    /// The server's private key (`server.key`).
    #[must_use]
    pub fn server_key(&self) -> PathBuf {
        self.dir.0.join("server.key")
    }

    /// The CA's certificate in PEM, for a client to trust.
    #[must_use]
    pub fn ca_pem(&self) -> Vec<u8> {
        self.read("ca.crt")
    }

    /// The client certificate in PEM (mutual TLS).
    #[must_use]
    pub fn client_cert_pem(&self) -> Vec<u8> {
        self.read("client.crt")
    }

    /// The client's private key in PEM (mutual TLS).
    #[must_use]
    pub fn client_key_pem(&self) -> Vec<u8> {
        self.read("client.key")
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.0.join(file)).unwrap_or_default()
    }
}

/// Runs `openssl` in `dir` with `args` (split on whitespace) and then `more`.
fn openssl(dir: &Path, args: &str, more: &[&str]) -> Result<(), Error> {
    let mut command = Command::new("openssl");
    command
        .args(args.split_whitespace())
        .args(more)
        .current_dir(dir);
    let output = crate::output("openssl", &mut command)?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(Error::Tls(format!("openssl {args}: {}", stderr.trim())))
    }
}
