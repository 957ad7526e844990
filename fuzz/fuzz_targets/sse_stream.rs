#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    llm_ab::fuzzing::sse_stream(data);
});
