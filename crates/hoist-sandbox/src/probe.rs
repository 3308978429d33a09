use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Readiness as the reference platform defines it: any HTTP answer on `/kaithhealth`, whatever
/// its status, means the app is listening and speaking HTTP.
pub async fn probe_http(mut stream: TcpStream) -> bool {
    let req = b"GET /kaithhealth HTTP/1.1\r\nHost: localhost\r\nUser-Agent: hoist-readiness\r\nConnection: close\r\n\r\n";
    if stream.write_all(req).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 5];
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    &buf == b"HTTP/"
}
