"""What the machine has and can run: GPUs and their CUDA (gpu), TensorRT's published facts
(trt_facts), shared libraries found the loader's way (libraries), Triton's bundled server
(triton_dist), TensorRT engines cached per GPU and version (engine_cache) and `doctor`, which
reports them. Imports only the core; the runtime, export, serve and the CLI use it."""
