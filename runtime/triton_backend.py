"""A denoiser that runs on a Triton Inference Server: ``sample --backend triton --url HOST:PORT``.

The numpy sampler runs here, each step's network call there (the ``ddpm_denoiser`` model that
`ddpm-deploy serve` or a `triton-repo` repository serves). The model card travels in the model's
config (parameter ``ddpm_deploy.card``), so the client needs no local model file. Needs only
``tritonclient[http]`` beside the runtime: no torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ddpm_deploy.runtime.backends import Denoiser, split_url

from ddpm_deploy.card import CARD_KEY, parse_card
from ddpm_deploy.errors import UserError

DENOISER_MODEL = "ddpm_denoiser"


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300].rstrip(".")


class TritonDenoiser(Denoiser):
    backend = "triton"

    def __init__(self, url: str, timeout_s: float = 600.0):
        host, model = split_url(str(url))  # HOST:PORT[/MODEL], or one line naming that form
        try:
            import tritonclient.http as http
        except ModuleNotFoundError:
            raise UserError(
                "the triton backend needs tritonclient: pip install 'tritonclient[http]' "
                "(or 'ddpm-deploy[serve]')"
            ) from None
        self.url, self.model = host, model or DENOISER_MODEL
        self.http = http
        try:
            self.client = http.InferenceServerClient(
                host, connection_timeout=timeout_s, network_timeout=timeout_s
            )
            if not self.client.is_model_ready(self.model):
                raise UserError(f"Triton at {host} has no ready model {self.model!r}")
            config = self.client.get_model_config(self.model)
        except UserError:
            raise
        except Exception as e:
            raise UserError(
                f"no Triton server answers at {host} ({_one_line(e)}); start one with "
                "`ddpm-deploy serve`, or pass --url HOST:PORT[/MODEL]"
            ) from None
        params = config.get("parameters", {})
        if CARD_KEY not in params:
            raise UserError(f"Triton model {self.model!r} at {host} carries no ddpm-deploy card")
        text = params[CARD_KEY].get("string_value") if isinstance(params[CARD_KEY], dict) else None
        self.card = parse_card(str(text), f"Triton model {self.model}", "serve a ddpm-deploy model")
        self.max_batch = int(config.get("max_batch_size", 0)) or 1 << 30
        self.path = Path(f"triton://{host}/{self.model}")
        self.device = f"{host}/{self.model}"
        self.calls = 0

    def _infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        dtypes = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}
        inputs = []
        for name, value in feeds.items():
            value = value if value.ndim > 1 else value.reshape(-1, 1)  # t, y: one value per row
            item = self.http.InferInput(name, list(value.shape), dtypes[value.dtype])
            item.set_data_from_numpy(np.ascontiguousarray(value))
            inputs.append(item)
        outputs = [self.http.InferRequestedOutput("eps")]
        return self.client.infer(self.model, inputs, outputs=outputs).as_numpy("eps")

    def __call__(self, x: np.ndarray, t: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        self.calls += 1
        feeds = self.inputs(x.astype(np.float32, copy=False), t.astype(np.int64, copy=False), y)
        try:
            parts = [
                self._infer({k: v[i : i + self.max_batch] for k, v in feeds.items()})
                for i in range(0, len(x), self.max_batch)
            ]
        except Exception as e:
            raise UserError(
                f"Triton at {self.url} failed at denoiser call {self.calls} (t={int(t[0])}): "
                f"{_one_line(e)}; nothing was written"
            ) from None
        return np.concatenate(parts)
