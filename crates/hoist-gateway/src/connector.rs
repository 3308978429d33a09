//! Connects the pooled client to an instance: the URI's host is `<instance>.<service>`, and the
//! socket is created inside that instance's network namespace, then connected to its loopback.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::table::RoutingTable;

#[derive(Clone)]
pub(crate) struct NetnsConnector {
    pub(crate) table: Arc<ArcSwap<RoutingTable>>,
}

impl tower_service::Service<Uri> for NetnsConnector {
    type Response = TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let table = self.table.load();
        let upstream = uri
            .host()
            .and_then(|h| h.split_once('.'))
            .and_then(|(instance, service)| table.route(service)?.find(instance));
        Box::pin(async move {
            let upstream = upstream.ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("instance {uri} is no longer routable"),
                )
            })?;
            let stream = upstream.netns.connect(upstream.port).await?;
            Ok(TokioIo::new(stream))
        })
    }
}
