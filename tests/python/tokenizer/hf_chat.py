"""Published chat templates and a renderer that reproduces transformers' apply_chat_template
(jinja2 ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loopcontrols, raise_exception and
its json.dumps-based tojson). Shared by the golden generator and the differential test."""
import json

MIXTRAL_INSTRUCT = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")

LLAMA2_CHAT = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")

LLAMA3_INSTRUCT = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim"
    " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

QWEN2_CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

MISTRAL_V03 = """{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\\n\\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
"""

# Not a published template: exercises whitespace control, lstrip/trim_blocks on indented lines,
# macros, loop variables, slicing, filters and string methods that the published ones touch lightly.
FEATURES = """{# comment at start #}
{% macro turn(role, text, n=0) -%}
<{{ role|upper }}:{{ n }}>{{ text }}</{{ role }}>
{%- endmacro %}
{% set ns = namespace(count=0, roles=[]) %}
  {% for m in messages if m.role != 'tool' %}
    {% set ns.count = ns.count + 1 %}
    {{ turn(m.role, m.content|trim, loop.index) }} {{ loop.revindex0 }}{{ '|first' if loop.first }}{{ '|last' if loop.last else '' }}
    {%- if loop.previtem is defined %} prev={{ loop.previtem.role }}{% endif %}

  {% else %}
no messages
  {% endfor %}
count={{ ns.count }} {{ messages|length }} {{ (messages|map(attribute='role')|list)[-2:]|join(',') }}
{{ messages[0].content[:5] ~ '..' if messages else 'none' }} {{ 'x' * 3 }} {{ 7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1 / 4 }}
{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|map('length')|list }}
{%- for k, v in {'a': 1, 'b': [1, 2.5, none, true, 'q']}.items() %} {{ k }}={{ v }}{% endfor %}
{{ "A-b c".lower().split('-') }} {{ ' pad '.strip() }}|{{ 'abc'.startswith(('x', 'a')) }} {{ 'Title case'|title }}
{{ {'k': 'v', 'n': [1, {'z': none}]}|tojson }} {{ [3, 1, 2]|sort|join('') }} {{ [1, 2, 2, 3]|unique|list|sum }}
{%+ if add_generation_prompt %}  GEN{% endif +%}
   END
"""

TEMPLATES = {
    "mixtral-instruct": {"template": MIXTRAL_INSTRUCT, "bos_token": "<s>", "eos_token": "</s>"},
    "mistral-v0.3": {"template": MISTRAL_V03, "bos_token": "<s>", "eos_token": "</s>", "tools": True},
    "llama-2-chat": {"template": LLAMA2_CHAT, "bos_token": "<s>", "eos_token": "</s>"},
    "llama-3-instruct": {"template": LLAMA3_INSTRUCT, "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "qwen2-chatml": {"template": QWEN2_CHATML, "bos_token": "", "eos_token": "<|im_end|>"},
    "features": {"template": FEATURES, "bos_token": "<s>", "eos_token": "</s>"},
}


def _env():
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def render(template, messages, add_generation_prompt, bos_token, eos_token, tools=None):
    """(True, text) or (False, error message), as transformers would produce them."""
    import jinja2
    env = _env()
    ctx = {"messages": messages, "add_generation_prompt": add_generation_prompt}
    if bos_token:
        ctx["bos_token"] = bos_token
    if eos_token:
        ctx["eos_token"] = eos_token
    if tools is not None:
        ctx["tools"] = tools
    try:
        return True, env.from_string(template).render(**ctx)
    except jinja2.exceptions.TemplateError as e:
        return False, str(e)
