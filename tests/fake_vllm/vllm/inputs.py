def TokensPrompt(prompt_token_ids):  # noqa: N802 - vLLM's TypedDict is called like a class
    return {"prompt_token_ids": prompt_token_ids}
