//! Generates the fake observer's server from `proto/` with protox (no protoc).

fn main() {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["observer.proto", "flow.proto"], ["proto"])
        .expect("compiling proto/*.proto");
    tonic_prost_build::configure()
        .build_client(false)
        .compile_fds(fds)
        .expect("generating the observer server");
}
