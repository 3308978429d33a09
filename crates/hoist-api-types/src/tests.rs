use serde_json::json;

use crate::*;

fn err<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: serde_json::Value) -> String {
    from_json::<T>(body.to_string().as_bytes())
        .unwrap_err()
        .to_string()
}

#[test]
fn a_deploy_request_refuses_an_unknown_field_and_lists_every_known_one() {
    let e = err::<DeployRequest>(json!({"source": "/x", "min_instance": 1}));
    assert!(e.contains("unknown field `min_instance`"), "{e}");
    // The list holds the flattened scaling fields too.
    assert!(
        e.contains("`source`") && e.contains("`min_instances`"),
        "{e}"
    );
}

#[test]
fn a_wrong_type_in_a_flattened_scaling_field_names_that_field() {
    let e = err::<DeployRequest>(json!({"source": "/x", "max_instances": "many"}));
    assert_eq!(
        e,
        "invalid field `max_instances`: invalid type: string \"many\", expected u32"
    );
    let e = err::<DeployRequest>(json!({"source": "/x", "concurrency": -1}));
    assert!(e.starts_with("invalid field `concurrency`"), "{e}");
    let e = err::<DeployRequest>(json!({"source": 5}));
    assert!(e.starts_with("invalid field `source`: invalid type"), "{e}");
}

#[test]
fn an_unknown_runtime_lists_the_allowed_ones() {
    let e = err::<DeployRequest>(json!({"source": "/x", "runtime": "cobol"}));
    assert!(e.starts_with("invalid field `runtime`"), "{e}");
    for r in ["python", "node", "go", "rust", "debian"] {
        assert!(e.contains(r), "{e}");
    }
}

#[test]
fn every_deploy_field_is_accepted_and_round_trips() {
    let body = json!({
        "source": "/x", "name": "web", "branch": "main", "root": "app", "runtime": "python",
        "build": "make", "start": "run", "port": 8080, "memory": "512mb", "env": ["A=1"],
        "min_instances": 1, "max_instances": 3, "concurrency": 5, "idle_freeze": "30s",
        "idle_stop": "15m", "startup_boost": false, "upload": "u-0123456789", "auto_deploy": "poll", "poll_interval": "1m", "watch": ["api/**"],
        "static": "dist", "static_prefix": "/", "static_spa": true
    });
    let req: DeployRequest = from_json(body.to_string().as_bytes()).unwrap();
    assert_eq!(req.scaling.max_instances, Some(3));
    assert_eq!(req.scaling.startup_boost, Some(false));
    assert_eq!(req.auto_deploy, Some(hoist_core::AutoDeploy::Poll));
    assert_eq!(req.static_dir.as_deref(), Some("dist"));
    assert_eq!(req.static_spa, Some(true));
    assert_eq!(serde_json::to_value(&req).unwrap(), body);
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut fields = DeployRequest::FIELDS.to_vec();
    fields.sort();
    assert_eq!(keys, fields);
}

#[test]
fn an_upload_takes_the_place_of_the_source() {
    let req: DeployRequest = from_json(br#"{"upload": "u-0123456789", "name": "web"}"#).unwrap();
    assert_eq!(req.source, "");
    assert_eq!(
        req.upload.as_ref().map(|u| u.as_str()),
        Some("u-0123456789")
    );
    assert_eq!(
        serde_json::to_value(&req).unwrap(),
        json!({"upload": "u-0123456789", "name": "web"}),
        "no empty source on the wire"
    );
    let e = err::<DeployRequest>(json!({"upload": "d-0123456789"}));
    assert!(e.starts_with("invalid field `upload`: "), "{e}");
}

#[test]
fn scaling_fields_match_serdes_own_list() {
    let e = err::<ScalingSettings>(json!({"zz": 1}));
    let listed = ScalingSettings::FIELDS
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(
        e,
        format!("invalid request body: unknown field `zz`, expected one of {listed}")
    );
}

#[test]
fn scaling_settings_convert_once_with_bounded_durations() {
    let s: ScalingSettings = from_json(br#"{"idle_freeze": "1s", "max_instances": 4}"#).unwrap();
    let layer = s.to_layer().unwrap();
    assert_eq!(layer.idle_freeze_ms, Some(1000));
    assert_eq!(layer.max_instances, Some(4));
    let s: ScalingSettings = from_json(br#"{"idle_stop": "30d"}"#).unwrap();
    let e = s.to_layer().unwrap_err().to_string();
    assert!(e.contains("idle_stop"), "{e}");
}

#[test]
fn trailing_garbage_and_non_objects_are_refused() {
    assert!(from_json::<ScalingSettings>(b"{} x").is_err());
    let e = from_json::<DeployRequest>(b"[1]").unwrap_err().to_string();
    assert!(e.starts_with("invalid request body: invalid type"), "{e}");
}

#[test]
fn an_unknown_log_stream_in_a_list_names_the_allowed_ones() {
    #[derive(Debug, serde::Deserialize)]
    struct Q {
        #[allow(dead_code)]
        stream: CommaList<LogStream>,
    }
    let e = err::<Q>(json!({"stream": "stdout,nope"}));
    assert!(
        e.contains(
            "invalid log stream 'nope': must be one of stdout, stderr, build, system, access"
        ),
        "{e}"
    );
    let q: LogsQuery = serde_json::from_value(json!({"stream": "stdout, access"})).unwrap();
    assert_eq!(
        q.stream.unwrap().0,
        vec![LogStream::Stdout, LogStream::Access]
    );
}

#[test]
fn stream_events_keep_their_wire_shape() {
    let e = StreamEvent::Deployment(DeploymentOutcome {
        id: "d-0123456789".into(),
        service: "web".into(),
        state: DeploymentState::Live,
        reason: None,
        url: Some("http://web.localhost".into()),
    });
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        json!({"type": "deployment", "id": "d-0123456789", "service": "web", "state": "live",
               "reason": null, "url": "http://web.localhost"})
    );
}

#[test]
fn a_deploy_body_with_a_key_twice_or_without_source_says_so_once() {
    let twice = crate::from_json::<DeployRequest>(
        br#"{"source":"a","max_instances":1,"max_instances":500}"#,
    )
    .unwrap_err();
    assert!(
        twice
            .to_string()
            .contains("duplicate field `max_instances`"),
        "{twice}"
    );
    let missing = crate::from_json::<DeployRequest>(br#"{"name":"web"}"#).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "invalid request body: missing field `source`"
    );
}
