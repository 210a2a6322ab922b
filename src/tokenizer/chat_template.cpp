// Tokenizer::apply_chat_template: the context transformers passes to a chat template (messages,
// add_generation_prompt and the special-token strings), rendered by the sandboxed Jinja interpreter.
#include "tokenizer/jinja.h"
#include "tokenizer/tokenizer.h"

namespace hr {

Result<std::string> Tokenizer::apply_chat_template(const nlohmann::ordered_json& messages, bool add_generation_prompt) const {
    if (chat_template_.empty()) {
        return make_error("chat template: the model has no chat_template (expected one in tokenizer_config.json "
                          "or chat_template.jinja)");
    }
    if (!messages.is_array()) return make_error("chat template: expected messages to be a JSON array");
    nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
    ctx["messages"] = messages;
    ctx["add_generation_prompt"] = add_generation_prompt;
    // transformers passes the special tokens map; unset tokens stay undefined in the template.
    if (!bos_token_.empty()) ctx["bos_token"] = bos_token_;
    if (!eos_token_.empty()) ctx["eos_token"] = eos_token_;
    if (!unk_token_.empty()) ctx["unk_token"] = unk_token_;
    if (!pad_token_.empty()) ctx["pad_token"] = pad_token_;
    return jinja::render(chat_template_, ctx);
}

Result<std::string> Tokenizer::apply_chat_template(const nlohmann::json& messages, bool add_generation_prompt) const {
    // note: nlohmann::json sorts object keys, so tojson output of such messages is key-sorted; callers that
    // need the original key order pass an ordered_json.
    return apply_chat_template(nlohmann::ordered_json::parse(messages.dump()), add_generation_prompt);
}

}  // namespace hr
