"""The official openai client against the server: completions and chat, whole and streamed.
Run by tests/cpu_server.rs with BASE_URL=http://127.0.0.1:PORT/v1; prints one JSON object."""
import json, os, sys
from openai import OpenAI
c = OpenAI(base_url=os.environ["BASE_URL"], api_key="unused", max_retries=0, timeout=300)
model = c.models.list().data[0].id
out = {"model": model}
r = c.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
out["completion"] = {"text": r.choices[0].text, "finish": r.choices[0].finish_reason,
                     "prompt_tokens": r.usage.prompt_tokens, "completion_tokens": r.usage.completion_tokens}
text, finish, usage = "", None, None
for ch in c.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0,
                               stream=True, stream_options={"include_usage": True}):
    if ch.usage: usage = ch.usage.completion_tokens
    for ch_c in ch.choices:
        text += ch_c.text
        finish = ch_c.finish_reason or finish
out["completion_stream"] = {"text": text, "finish": finish, "completion_tokens": usage}
msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a fruit."}]
r = c.chat.completions.create(model=model, messages=msgs, max_tokens=8, temperature=0, logprobs=True, top_logprobs=2)
out["chat"] = {"text": r.choices[0].message.content, "role": r.choices[0].message.role,
               "finish": r.choices[0].finish_reason, "completion_tokens": r.usage.completion_tokens,
               "logprobs": [(t.token, t.logprob, len(t.top_logprobs)) for t in r.choices[0].logprobs.content]}
text, finish, roles = "", None, []
for ch in c.chat.completions.create(model=model, messages=msgs, max_tokens=8, temperature=0, stream=True):
    for ch_c in ch.choices:
        if ch_c.delta.role: roles.append(ch_c.delta.role)
        text += ch_c.delta.content or ""
        finish = ch_c.finish_reason or finish
out["chat_stream"] = {"text": text, "finish": finish, "roles": roles}
try:
    c.completions.create(model="no-such-model", prompt="x", max_tokens=1)
    out["unknown_model"] = "accepted"
except Exception as e:
    out["unknown_model"] = type(e).__name__
print(json.dumps(out))
