"""A stand-in for vLLM's offline API, for tests on machines without a GPU.

It records what it is asked (engine options, prompts, sampling parameters, LoRA requests) and
answers deterministically: each completion reads "<number of prompt tokens> tokens" and runs to
max_tokens. Asked with a LoRA request whose path is "devices", it answers CUDA_VISIBLE_DEVICES.
"""

import os
from types import SimpleNamespace


class SamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class LLM:
    def __init__(self, **options):
        self.options = options
        self.calls = []

    def generate(self, prompts, sampling_params, use_tqdm=True, lora_request=None):
        self.calls.append((prompts, sampling_params, lora_request))
        outputs = []
        for prompt, params in zip(prompts, sampling_params):
            if lora_request is not None and lora_request.lora_path == "devices":
                text = os.environ.get("CUDA_VISIBLE_DEVICES", "")
            else:
                text = f"{len(prompt['prompt_token_ids'])} tokens"
            tokens = list(range(params.kwargs["max_tokens"]))
            outputs.append(SimpleNamespace(outputs=[SimpleNamespace(text=text, token_ids=tokens, finish_reason="length")]))
        return outputs
