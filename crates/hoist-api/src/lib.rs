//! The REST API (`/v1`, JSON, bearer-token auth) and its OpenAPI description. Every CLI
//! command but `server` is a client of this API.

mod auth;
mod routes;
mod serve;
mod stream;

pub use routes::router;
pub use serve::serve;
