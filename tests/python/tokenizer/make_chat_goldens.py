"""Writes tests/unit/tokenizer/data/chat_templates.json: published chat templates and the text that
jinja2 renders for them the way transformers does (ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, loopcontrols, raise_exception, json.dumps-based tojson), or the error it raises.
Run: python3 tests/python/tokenizer/make_chat_goldens.py   (needs jinja2)"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from hf_chat import TEMPLATES, render  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "unit", "tokenizer", "data", "chat_templates.json")

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "You are a strict document classifier."},
     {"role": "user", "content": "  Receipt: coffee $3.50  "}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a"},
     {"role": "assistant", "content": " b "}, {"role": "user", "content": "c"}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    [{"role": "assistant", "content": "I start"}],
    [],
    [{"role": "user", "content": "Unicode: 日本語 🦙 émoji 👩‍👩‍👧 مرحبا\ttab\nnewline"}],
    [{"role": "user", "content": "Template-looking text {{ bos_token }} {% if %} {# x #} '\"quotes\""}],
    [{"role": "user", "content": "\n\n  spaced  \n\n"}, {"role": "assistant", "content": "\n ok \n"}],
    [{"role": "tool", "content": "42", "tool_call_id": "abcdefghi"}],
    [{"role": "user", "content": "weather in Paris?"},
     {"role": "assistant", "content": "", "tool_calls": [{"id": "abc123def", "type": "function",
      "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
     {"role": "tool", "content": "sunny, 21C", "tool_call_id": "abc123def"},
     {"role": "assistant", "content": "It is sunny."}, {"role": "user", "content": "thanks"}],
    [{"role": "user", "content": "bad id"},
     {"role": "assistant", "content": "", "tool_calls": [{"id": "short", "type": "function",
      "function": {"name": "f", "arguments": {}}}]}],
]


def main():
    out = []
    for name, spec in TEMPLATES.items():
        cases = []
        for conv in CONVERSATIONS:
            for gen in (True, False):
                for tools in ([None, TOOLS] if spec.get("tools") else [None]):
                    case = {"messages": conv, "add_generation_prompt": gen}
                    if tools is not None:
                        case["tools"] = tools
                    ok, text = render(spec["template"], conv, gen, spec["bos_token"], spec["eos_token"], tools)
                    case["text" if ok else "error"] = text
                    cases.append(case)
        out.append({"name": name, "template": spec["template"], "bos_token": spec["bos_token"],
                    "eos_token": spec["eos_token"], "cases": cases})
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {sum(len(t['cases']) for t in out)} cases")


if __name__ == "__main__":
    main()
