import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir } from '../testing/tmp-dir';
import { sharedModelDir } from '../testing/shared-model';
import { writeTinyModel } from '../testing/tiny-model';
import { CHATML_TEMPLATE, GEMMA_TEMPLATE, INTERNLM2_TEMPLATE, INTERNLM_TEMPLATE, LLAMA2_TEMPLATE, LLAMA3_TEMPLATE, QWEN2_TEMPLATE } from './builtin';
import { ChatTemplate, findChatTemplate, loadChatTemplate } from './chat-template';

const convo = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: 'Bye' },
];

describe('chat templates', () => {
  it("renders the shared model's chat_template.jinja", () => {
    const dir = sharedModelDir('tiny-qwen2-pydocs');
    if (!dir) {
      console.log('not run: no shared model');
      return;
    }
    const t = loadChatTemplate(dir, CHATML_TEMPLATE, { bosToken: '<|endoftext|>', eosToken: '<|endoftext|>' });
    expect(t.origin).toBe('chat_template.jinja');
    expect(t.render([{ role: 'user', content: 'What is a PyObject?' }])).toBe(
      '<|im_start|>user\nWhat is a PyObject?<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(t.render([{ role: 'user', content: 'x' }], { addGenerationPrompt: false })).toBe('<|im_start|>user\nx<|im_end|>\n');
  });

  it('reads tokenizer_config.json chat_template as a string or a named list', () => {
    const tmp = makeTempDir();
    try {
      writeTinyModel(tmp.dir);
      expect(findChatTemplate(tmp.dir)?.origin).toBe('tokenizer_config.json');
      const cfgFile = path.join(tmp.dir, 'tokenizer_config.json');
      const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
      fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, chat_template: [{ name: 'tool_use', template: 'TOOLS' }, { name: 'default', template: 'DEFAULT {{ messages[0].content }}' }] }));
      expect(loadChatTemplate(tmp.dir, CHATML_TEMPLATE, {}).render([{ role: 'user', content: 'q' }])).toBe('DEFAULT q');
      delete cfg.chat_template;
      fs.writeFileSync(cfgFile, JSON.stringify(cfg));
      const t = loadChatTemplate(tmp.dir, QWEN2_TEMPLATE, {});
      expect(t.origin).toBe('builtin');
      expect(t.render([{ role: 'user', content: 'q' }])).toBe(
        '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n',
      );
      fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, chat_template: '{% for %}' }));
      expect(() => loadChatTemplate(tmp.dir, CHATML_TEMPLATE, {})).toThrow(/cannot parse chat template/);
    } finally {
      tmp.cleanup();
    }
  });

  it('turns raise_exception into InvalidArgumentError', () => {
    const t = new ChatTemplate("{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok", 'builtin');
    expect(t.render([{ role: 'user', content: 'x' }])).toBe('ok');
    expect(() => t.render([{ role: 'assistant', content: 'x' }])).toThrow(/refused the conversation: .*first message must be from the user/);
  });

  it('built-in templates render the expected prompts', () => {
    const sp = { bosToken: '<s>', eosToken: '</s>' };
    expect(new ChatTemplate(LLAMA2_TEMPLATE, 'builtin', sp).render(convo)).toBe(
      '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]',
    );
    expect(new ChatTemplate(LLAMA3_TEMPLATE, 'builtin', { bosToken: '<|begin_of_text|>' }).render(convo.slice(1, 2))).toBe(
      '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    expect(new ChatTemplate(INTERNLM2_TEMPLATE, 'builtin', sp).render(convo.slice(1, 2))).toBe(
      '<s><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(new ChatTemplate(INTERNLM_TEMPLATE, 'builtin', sp).render(convo.slice(1, 3), { addGenerationPrompt: false })).toBe(
      '<s><|User|>:Hi<eoh>\n<|Bot|>:Hello!<eoa>\n',
    );
    // Gemma: the system prompt opens the first user turn, the assistant is `model`, contents trimmed
    expect(new ChatTemplate(GEMMA_TEMPLATE, 'builtin', { bosToken: '<bos>' }).render([...convo.slice(0, 3), { role: 'user', content: ' Bye\n' }])).toBe(
      '<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n',
    );
    expect(new ChatTemplate(GEMMA_TEMPLATE, 'builtin', { bosToken: '<bos>' }).render(convo.slice(1, 2), { addGenerationPrompt: false })).toBe(
      '<bos><start_of_turn>user\nHi<end_of_turn>\n',
    );
  });

  it('passes extra variables (chat_template_kwargs) to the template, never over its own', () => {
    // written for this test: the constructs Qwen3's own template is built from (a namespace found by a reverse scan,
    // split / strip on strings, `is string`, enable_thinking), so a Qwen3 checkpoint's template renders here
    const src =
      "{%- set ns = namespace(last_query=-1) %}{%- for m in messages[::-1] %}{%- if ns.last_query < 0 and m.role == 'user' and m.content is string %}" +
      '{%- set ns.last_query = (messages|length - 1) - loop.index0 %}{%- endif %}{%- endfor %}' +
      "{%- for m in messages %}{%- if m.role == 'assistant' %}{%- set content = m.content %}{%- set reasoning = '' %}" +
      "{%- if '</think>' in content %}{%- set reasoning = content.split('</think>')[0].split('<think>')[-1].strip('\\n') %}" +
      "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}" +
      "{%- if loop.index0 > ns.last_query %}{{- '<|im_start|>assistant\\n<think>\\n' + reasoning + '\\n</think>\\n\\n' + content + '<|im_end|>\\n' }}" +
      "{%- else %}{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}{%- endif %}" +
      "{%- else %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}" +
      "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- if enable_thinking is defined and enable_thinking is false %}" +
      "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}";
    const t = new ChatTemplate(src, 'tokenizer_config.json');
    const history = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: '<think>\nhmm\n</think>\n\nhello' },
      { role: 'user', content: '2+2?' },
    ];
    const head = '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n';
    expect(t.render(history)).toBe(head); // the earlier turn's reasoning is dropped from the history
    expect(t.render(history, { extra: { enable_thinking: true } })).toBe(head);
    expect(t.render(history, { extra: { enable_thinking: false } })).toBe(`${head}<think>\n\n</think>\n\n`);
    // a turn after the last user message keeps its reasoning
    expect(t.render([...history, { role: 'assistant', content: '<think>\nsum\n</think>\n\n4' }], { addGenerationPrompt: false })).toBe(
      `${head}<think>\nsum\n</think>\n\n4<|im_end|>\n`,
    );
    // the request's own variables win over extra ones of the same name
    expect(t.render(history, { extra: { messages: [], add_generation_prompt: false } })).toBe(head);
  });
});
