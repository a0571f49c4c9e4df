//! The testkit's errors name the problem.

use rwsplit_testkit::{Cluster, Error};

#[tokio::test]
async fn a_taken_port_is_reported_by_number() {
    let holder = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = holder.local_addr().unwrap().port();
    let err = Cluster::builder().base_port(port).replicas(0).start().await.unwrap_err();
    assert!(matches!(err, Error::PortInUse { port: p } if p == port), "{err}");
}

#[tokio::test]
async fn a_node_that_fails_to_start_shows_its_log() {
    let err = Cluster::builder()
        .name("badconf")
        .replicas(0)
        .setting("shared_buffers", "not-a-size")
        .start()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::NodeStartFailed { .. }), "{text}");
    assert!(text.contains("shared_buffers"), "the log tail should name the bad setting: {text}");
}

#[tokio::test]
async fn missing_binaries_explain_how_to_install_them() {
    let dir = std::env::temp_dir().join(format!("rwsplit-nobin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Binaries on this machine are the native backend's concern (containers bring their own).
    let builder = Cluster::builder().backend(rwsplit_testkit::BackendKind::Native);
    let err = builder.bin_dir(&dir).start().await.unwrap_err();
    assert!(err.to_string().contains("apt-get install postgresql"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
