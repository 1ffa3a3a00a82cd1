//! Generates the observer client from `proto/` with protox (a pure-Rust protobuf compiler,
//! so no protoc is needed) and tonic-prost-build. Text fields are `bytes::Bytes`, borrowed
//! from the received frame.

fn main() {
    #[cfg(feature = "client")]
    {
        println!("cargo:rerun-if-changed=proto");
        let fds = protox::compile(["observer.proto", "flow.proto"], ["proto"])
            .expect("compiling proto/*.proto");
        tonic_prost_build::configure()
            .build_server(false)
            .bytes(".")
            .compile_fds(fds)
            .expect("generating the observer client");
    }
}
