//! The connection handshake (an HMAC-SHA256 challenge both ways when a key is set), TLS
//! configurations, and the byte stream that is plain TCP or TLS.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::Sha256;

use crate::error::Error;
use crate::frame::{
    ClientHello, FrameReader, PROTOCOL, ServerHello, ServerVerdict, decode_body, encode_frame,
};

const NONCE: usize = 32;
const CLIENT_LABEL: &[u8] = b"braid-rpc client";
const DAEMON_LABEL: &[u8] = b"braid-rpc daemon";
/// Handshake messages are small; a peer that sends more is not a braid peer.
const HANDSHAKE_LIMIT: usize = 4096;

fn mac(key: &[u8], label: &[u8], first: &[u8], second: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(label);
    mac.update(first);
    mac.update(second);
    mac
}

fn nonce() -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; NONCE];
    rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty())?;
    Ok(bytes)
}

/// A TLS configuration for a daemon: its certificate chain and private key.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    /// A configuration from a PEM certificate chain (leaf first) and a PEM private key.
    ///
    /// # Errors
    /// [`Error::Tls`] when the PEM does not parse or the key does not fit the certificate.
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        let certs = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Tls(format!("certificate chain: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Tls("no certificate in the PEM given".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| Error::Tls(format!("private key: {e}")))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok(ServerTls {
            config: Arc::new(config),
        })
    }

    /// A configuration built with rustls directly (client certificates, other providers).
    pub fn from_config(config: Arc<rustls::ServerConfig>) -> Self {
        ServerTls { config }
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// A TLS configuration for proxies: the certificates they trust.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl ClientTls {
    /// Trusts the certificate authorities (or self-signed certificates) in `ca_pem`.
    ///
    /// # Errors
    /// [`Error::Tls`] when the PEM holds no usable certificate.
    pub fn trusting_pem(ca_pem: &[u8]) -> Result<Self, Error> {
        let mut roots = rustls::RootCertStore::empty();
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| Error::Tls(format!("trusted certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Error::Tls(format!("trusted certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::Tls("no certificate in the PEM given".into()));
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// A configuration built with rustls directly.
    pub fn from_config(config: Arc<rustls::ClientConfig>) -> Self {
        ClientTls { config }
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A connection's byte stream: plain TCP or TLS over TCP.
pub(crate) enum Stream {
    Plain(TcpStream),
    ServerTls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
    ClientTls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::ServerTls(s) => &s.sock,
            Stream::ClientTls(s) => &s.sock,
        }
    }

    pub fn server(tcp: TcpStream, tls: Option<&ServerTls>) -> Result<Stream, Error> {
        Ok(match tls {
            None => Stream::Plain(tcp),
            Some(tls) => {
                let conn = rustls::ServerConnection::new(tls.config.clone())
                    .map_err(|e| Error::Tls(e.to_string()))?;
                Stream::ServerTls(Box::new(rustls::StreamOwned::new(conn, tcp)))
            }
        })
    }

    pub fn client(tcp: TcpStream, host: &str, tls: Option<&ClientTls>) -> Result<Stream, Error> {
        Ok(match tls {
            None => Stream::Plain(tcp),
            Some(tls) => {
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| Error::Tls(format!("`{host}` is not a valid server name: {e}")))?;
                let conn = rustls::ClientConnection::new(tls.config.clone(), name)
                    .map_err(|e| Error::Tls(e.to_string()))?;
                Stream::ClientTls(Box::new(rustls::StreamOwned::new(conn, tcp)))
            }
        })
    }

    /// Whether TLS has decrypted bytes waiting that a read returns without touching the
    /// socket (a peek at the socket cannot see them).
    pub fn has_pending_plaintext(&mut self) -> bool {
        let state = match self {
            Stream::Plain(_) => return false,
            Stream::ServerTls(s) => s.conn.process_new_packets(),
            Stream::ClientTls(s) => s.conn.process_new_packets(),
        };
        // An error is for the next read to report.
        state.map_or(true, |state| state.plaintext_bytes_to_read() > 0)
    }

    /// Sends TLS's close_notify where there is TLS; errors are of no interest to a peer
    /// that is going away, but they are logged.
    pub fn close(&mut self) {
        let outcome = match self {
            Stream::Plain(_) => Ok(()),
            Stream::ServerTls(s) => {
                s.conn.send_close_notify();
                s.conn.complete_io(&mut s.sock).map(drop)
            }
            Stream::ClientTls(s) => {
                s.conn.send_close_notify();
                s.conn.complete_io(&mut s.sock).map(drop)
            }
        };
        if let Err(e) = outcome {
            tracing::trace!("closing a connection: {e}");
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::ServerTls(s) => s.read(buf),
            Stream::ClientTls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::ServerTls(s) => s.write(buf),
            Stream::ClientTls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::ServerTls(s) => s.flush(),
            Stream::ClientTls(s) => s.flush(),
        }
    }
}

/// Turns a TLS error hidden in an I/O error into [`Error::Tls`].
pub(crate) fn io_error_kind(e: &io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(ToString::to_string)
}

/// Turns a connection away before its handshake, saying why.
pub(crate) fn refuse_busy(stream: &mut Stream, reason: String) -> io::Result<()> {
    write_message(
        stream,
        &ServerHello {
            protocol: PROTOCOL,
            refused: Some(reason),
            nonce: Vec::new(),
            key_required: false,
        },
    )
}

fn write_message<T: serde::Serialize>(stream: &mut Stream, message: &T) -> io::Result<()> {
    let frame = encode_frame(message).map_err(io::Error::other)?;
    stream.write_all(&frame)?;
    stream.flush()
}

fn read_message<T: serde::de::DeserializeOwned>(
    stream: &mut Stream,
    reader: &mut FrameReader,
) -> Result<T, String> {
    match reader.read_frame(stream, HANDSHAKE_LIMIT) {
        Ok(Some(body)) => decode_body(body),
        Ok(None) => Err("the peer closed the connection during the handshake".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The daemon's side of the handshake; returns the client's session, or why the peer was
/// turned away.
pub(crate) fn accept(
    stream: &mut Stream,
    reader: &mut FrameReader,
    key: Option<&[u8]>,
) -> Result<u128, String> {
    let server_nonce = nonce().map_err(|e| format!("drawing a challenge: {e}"))?;
    write_message(
        stream,
        &ServerHello {
            protocol: PROTOCOL,
            refused: None,
            nonce: server_nonce.clone(),
            key_required: key.is_some(),
        },
    )
    .map_err(|e| format!("sending the challenge: {e}"))?;
    let hello: ClientHello = read_message(stream, reader)?;
    let refuse = |stream: &mut Stream, reason: String| {
        if let Err(e) = write_message(
            stream,
            &ServerVerdict::Refused {
                reason: reason.clone(),
            },
        ) {
            tracing::debug!("telling a refused client why: {e}");
        }
        Err(reason)
    };
    if hello.protocol != PROTOCOL {
        return refuse(
            stream,
            format!(
                "protocol version {} is not this daemon's {PROTOCOL}",
                hello.protocol
            ),
        );
    }
    let mac_back = match (key, &hello.mac) {
        (None, None) => None,
        (None, Some(_)) => {
            return refuse(
                stream,
                "this daemon has no key, but the client sent one".into(),
            );
        }
        (Some(_), None) => {
            return refuse(
                stream,
                "this daemon requires a key and none was given".into(),
            );
        }
        (Some(key), Some(answer)) => {
            if mac(key, CLIENT_LABEL, &server_nonce, &hello.nonce)
                .verify_slice(answer)
                .is_err()
            {
                return refuse(stream, "wrong key (the HMAC challenge failed)".into());
            }
            Some(
                mac(key, DAEMON_LABEL, &hello.nonce, &server_nonce)
                    .finalize()
                    .into_bytes()
                    .to_vec(),
            )
        }
    };
    write_message(stream, &ServerVerdict::Welcome { mac: mac_back })
        .map_err(|e| format!("sending the welcome: {e}"))?;
    Ok(hello.session)
}

/// The client's side of the handshake, announcing the proxy's `session`.
pub(crate) fn connect(
    stream: &mut Stream,
    reader: &mut FrameReader,
    key: Option<&[u8]>,
    session: u128,
    address: &str,
) -> Result<(), Error> {
    let auth = |message: String| Error::Authentication {
        address: address.to_string(),
        message,
    };
    let io = |e: io::Error| match io_error_kind(&e) {
        Some(tls) => Error::Tls(tls),
        None if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) =>
        {
            Error::Connect {
                address: address.to_string(),
                message: "no handshake from the daemon in time".into(),
            }
        }
        None => Error::Connect {
            address: address.to_string(),
            message: e.to_string(),
        },
    };
    let hello: ServerHello = match reader.read_frame(stream, HANDSHAKE_LIMIT) {
        Ok(Some(body)) => decode_body(body).map_err(|e| {
            Error::Protocol(format!(
                "{address} did not greet like a braid daemon (is it one?): {e}"
            ))
        })?,
        Ok(None) => {
            return Err(Error::ConnectionLost {
                address: address.to_string(),
                message: "the daemon closed the connection before greeting".into(),
            });
        }
        Err(crate::frame::FrameError::Io(e)) => return Err(io(e)),
        Err(e) => {
            return Err(Error::Protocol(format!(
                "{address} did not greet like a braid daemon (is it one?): {e}"
            )));
        }
    };
    if let Some(reason) = hello.refused {
        return Err(Error::Busy(reason));
    }
    if hello.protocol != PROTOCOL {
        return Err(Error::Protocol(format!(
            "the daemon speaks protocol {}, this client {PROTOCOL}",
            hello.protocol
        )));
    }
    let client_nonce = nonce().map_err(|e| auth(format!("drawing a challenge: {e}")))?;
    let answer = match (key, hello.key_required) {
        (Some(key), true) => Some(
            mac(key, CLIENT_LABEL, &hello.nonce, &client_nonce)
                .finalize()
                .into_bytes()
                .to_vec(),
        ),
        (None, false) => None,
        (None, true) => {
            return Err(auth(
                "the daemon requires a key; give the proxy one (with_key)".into(),
            ));
        }
        (Some(_), false) => {
            return Err(auth(
                "this proxy has a key but the daemon asks for none; refusing to talk to a daemon that cannot prove it knows the key".into(),
            ));
        }
    };
    write_message(
        stream,
        &ClientHello {
            protocol: PROTOCOL,
            nonce: client_nonce.clone(),
            mac: answer,
            session,
        },
    )
    .map_err(io)?;
    let verdict: ServerVerdict = match reader.read_frame(stream, HANDSHAKE_LIMIT) {
        Ok(Some(body)) => decode_body(body)
            .map_err(|e| Error::Protocol(format!("the daemon's verdict does not decode: {e}")))?,
        Ok(None) => {
            return Err(Error::ConnectionLost {
                address: address.to_string(),
                message: "the daemon closed the connection during the handshake".into(),
            });
        }
        Err(crate::frame::FrameError::Io(e)) => return Err(io(e)),
        Err(e) => return Err(Error::Protocol(e.to_string())),
    };
    match verdict {
        ServerVerdict::Refused { reason } => Err(auth(format!("the daemon refused: {reason}"))),
        ServerVerdict::Welcome { mac: proof } => match (key, proof) {
            (None, _) => Ok(()),
            (Some(key), Some(proof)) => {
                if mac(key, DAEMON_LABEL, &client_nonce, &hello.nonce)
                    .verify_slice(&proof)
                    .is_ok()
                {
                    Ok(())
                } else {
                    Err(auth("the daemon does not know the key".into()))
                }
            }
            (Some(_), None) => Err(auth("the daemon did not prove it knows the key".into())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_depend_on_key_label_and_nonces() {
        let a = mac(b"k", CLIENT_LABEL, b"1", b"2").finalize().into_bytes();
        assert_ne!(
            a,
            mac(b"j", CLIENT_LABEL, b"1", b"2").finalize().into_bytes()
        );
        assert_ne!(
            a,
            mac(b"k", DAEMON_LABEL, b"1", b"2").finalize().into_bytes()
        );
        assert_ne!(
            a,
            mac(b"k", CLIENT_LABEL, b"2", b"1").finalize().into_bytes()
        );
    }

    #[test]
    fn pem_errors_are_clear() {
        assert!(matches!(ServerTls::from_pem(b"", b""), Err(Error::Tls(_))));
        assert!(matches!(
            ClientTls::trusting_pem(b"nothing"),
            Err(Error::Tls(_))
        ));
    }
}
