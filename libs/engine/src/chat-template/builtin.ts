// Chat templates for checkpoints that ship none (base models, older repos). Written for @huggingface/jinja; they
// receive `messages`, `add_generation_prompt`, `bos_token`, `eos_token`.

/** ChatML (Qwen2, InternLM2): <|im_start|>role\ncontent<|im_end|>\n */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** Qwen2 default: ChatML with a default system prompt when the conversation has none. */
export const QWEN2_TEMPLATE =
  "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}" +
  CHATML_TEMPLATE;

/** InternLM2: ChatML preceded by BOS. */
export const INTERNLM2_TEMPLATE = '{{ bos_token }}' + CHATML_TEMPLATE;

/** Llama 2 chat: [INST] blocks, the system prompt folded into the first user turn. */
export const LLAMA2_TEMPLATE =
  "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}{% set loop_messages = messages[1:] %}" +
  '{% else %}{% set system = false %}{% set loop_messages = messages %}{% endif %}' +
  '{% for message in loop_messages %}' +
  "{% if message['role'] == 'user' %}" +
  "{% if loop.index0 == 0 and system %}{% set content = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
  "{% else %}{% set content = message['content'] %}{% endif %}" +
  "{{ bos_token + '[INST] ' + content + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}" +
  '{% endfor %}';

/** Phi-3 / Phi-4-style: <|role|>\ncontent<|end|>\n, then <|assistant|>\n. */
export const PHI3_TEMPLATE =
  "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

/** Llama 3 instruct: header ids around roles, <|eot_id|> after each turn. */
export const LLAMA3_TEMPLATE =
  '{{ bos_token }}{% for message in messages %}' +
  "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

/** InternLM (v1) chat: <|User|>:...<eoh>\n<|Bot|>:...<eoa>\n */
export const INTERNLM_TEMPLATE =
  '{{ bos_token }}{% for message in messages %}' +
  "{% if message['role'] == 'system' %}{{ '<|System|>:' + message['content'] + '\\n' }}" +
  "{% elif message['role'] == 'user' %}{{ '<|User|>:' + message['content'] + '<eoh>\\n' }}" +
  "{% else %}{{ '<|Bot|>:' + message['content'] + '<eoa>\\n' }}{% endif %}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|Bot|>:' }}{% endif %}";

/** Gemma (1 / 2 / 3) instruct: <start_of_turn>role\ncontent<end_of_turn>\n with the assistant's turns as `model`, BOS first;
 *  a system message is folded into the first user turn (then a blank line), as Gemma's own template does. */
export const GEMMA_TEMPLATE =
  '{{ bos_token }}' +
  "{% if messages[0]['role'] == 'system' %}{% set first_user_prefix = messages[0]['content'] + '\\n\\n' %}{% set loop_messages = messages[1:] %}" +
  "{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}" +
  '{% for message in loop_messages %}' +
  "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}" +
  "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') + (message['content'] | trim) + '<end_of_turn>\\n' }}" +
  '{% endfor %}' +
  "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}";
