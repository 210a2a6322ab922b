// Tokenizer::apply_chat_template: the context transformers passes to a chat template (messages,
// add_generation_prompt and the special-token strings), rendered by the sandboxed Jinja interpreter
// (src/jinja). The template is parsed once, on first use or at start-up (check_chat_template).
#include <mutex>

#include "jinja/jinja.h"
#include "tokenizer/tokenizer.h"

namespace hr {

// The parsed template, or why it does not parse.
struct Tokenizer::CompiledTemplate {
    std::optional<jinja::Template> tmpl;
    std::string error;
};

namespace {
// note: guards only the lazy creation of Tokenizer::compiled_template_ (a pointer copy per render).
std::mutex g_compile_mutex;
}  // namespace

Result<std::shared_ptr<const Tokenizer::CompiledTemplate>> Tokenizer::compiled_chat_template() const {
    if (chat_template_.empty()) {
        return make_error("chat template: the model has no chat_template (expected one in tokenizer_config.json "
                          "or chat_template.jinja)");
    }
    std::lock_guard<std::mutex> lock(g_compile_mutex);
    if (!compiled_template_) {
        auto c = std::make_shared<CompiledTemplate>();
        auto t = jinja::Template::compile(chat_template_);
        if (t.ok()) c->tmpl = std::move(t).value();
        else c->error = t.error().message;
        compiled_template_ = std::move(c);
    }
    return std::shared_ptr<const CompiledTemplate>(compiled_template_);
}

Result<std::string> Tokenizer::apply_chat_template(const nlohmann::ordered_json& messages, bool add_generation_prompt) const {
    HR_ASSIGN(auto compiled, compiled_chat_template());
    if (!compiled->tmpl) return errorf("chat template: {}", compiled->error);
    if (!messages.is_array()) return make_error("chat template: expected messages to be a JSON array");
    nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
    ctx["messages"] = messages;
    ctx["add_generation_prompt"] = add_generation_prompt;
    // transformers passes the special tokens map; unset tokens stay undefined in the template.
    if (!bos_token_.empty()) ctx["bos_token"] = bos_token_;
    if (!eos_token_.empty()) ctx["eos_token"] = eos_token_;
    if (!unk_token_.empty()) ctx["unk_token"] = unk_token_;
    if (!pad_token_.empty()) ctx["pad_token"] = pad_token_;
    return compiled->tmpl->render(ctx);
}

Result<std::string> Tokenizer::apply_chat_template(const nlohmann::json& messages, bool add_generation_prompt) const {
    // note: nlohmann::json sorts object keys, so tojson output of such messages is key-sorted; callers that
    // need the original key order pass an ordered_json.
    return apply_chat_template(nlohmann::ordered_json::parse(messages.dump()), add_generation_prompt);
}

Status Tokenizer::check_chat_template() const {
    if (chat_template_.empty()) return ok();
    HR_ASSIGN(auto compiled, compiled_chat_template());
    if (!compiled->tmpl) return errorf("the model's chat template does not compile: {}", compiled->error);
    // user/assistant/user: the alternation every published template accepts (some refuse a system turn).
    const auto sample = nlohmann::ordered_json::parse(
        R"([{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "Tell me a joke."}])");
    for (bool gen : {true, false}) {
        auto r = apply_chat_template(sample, gen);
        if (!r.ok()) {
            return errorf("the model's chat template fails on a sample conversation (user, assistant, user; "
                          "add_generation_prompt={}): {}", gen, r.error().message);
        }
    }
    return ok();
}

}  // namespace hr
