"""The model Triton's Python backend runs for `ddpm-deploy serve` (imported by each model.py).

It runs inside Triton's backend stub process, which provides ``triton_python_backend_utils``. The
parameters in config.pbtxt (serve/repository.py) say which service, model file and backend. Each
request gets its own response: a bad one an error of one line, the good ones beside it in the same
dynamic batch their outputs (serve/rows.py).
"""

from __future__ import annotations

import json
import traceback

import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]  # in the stub only
from ddpm_deploy.runtime.backends import load_denoiser
from ddpm_deploy.serve.rows import DenoiserService, SampleService


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        denoiser = load_denoiser(
            params["backend"], params["model"], **json.loads(params["backend_options"])
        )
        if params["service"] == "sample":
            self.service = SampleService(denoiser, batch=int(params["batch"]))
        else:
            self.service = DenoiserService(denoiser)
        self.input_names = [i["name"] for i in config["input"]]
        self.logger = pb_utils.Logger

    @staticmethod
    def _code(result: Exception) -> tuple:
        """A bad request is the client's error (HTTP 400), where the Python backend can say so."""
        code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
        return (code,) if code is not None and not isinstance(result, RuntimeError) else ()

    def execute(self, requests: list) -> list:
        inputs = []
        for request in requests:
            tensors = {}
            for name in self.input_names:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                if tensor is not None:
                    tensors[name] = tensor.as_numpy()
            inputs.append(tensors)
        try:
            results = self.service.run(inputs)
        except Exception as e:  # a failure of the backend itself: every request of the batch
            self.logger.log_error(traceback.format_exc())
            message = f"{type(e).__name__}: {e}".splitlines()[0]
            results = [RuntimeError(message)] * len(requests)
        responses = []
        for result in results:
            if isinstance(result, Exception):
                error = pb_utils.TritonError(str(result), *self._code(result))
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
            else:
                tensors = [pb_utils.Tensor(name, value) for name, value in result.items()]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
