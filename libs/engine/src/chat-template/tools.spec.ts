import { ChatTemplate } from './chat-template';
import { messagesWithHermesTools } from './tools';

const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
const chatml = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
const conversation = [
  { role: 'user', content: 'weather in Paris?' },
  { role: 'assistant', content: '', tool_calls: [{ id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }] },
  { role: 'tool', content: '{"temp": 21}', tool_call_id: 'call_1' },
  { role: 'tool', content: '{"rain": false}', tool_call_id: 'call_1' },
];

describe('tools in the prompt', () => {
  it('a template without tools gets the Hermes convention: preamble in the system message, calls and results as text', () => {
    const out = messagesWithHermesTools([{ role: 'system', content: 'Be brief.' }, ...conversation], tools);
    expect(out.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(out[0].content.startsWith('Be brief.\n\n# Tools')).toBe(true);
    expect(out[0].content).toContain(JSON.stringify(tools[0]));
    expect(out[2].content).toBe('<tool_call>\n{"name":"get_weather","arguments":{"city":"Paris"}}\n</tool_call>');
    expect(out[3].content).toBe('<tool_response>\n{"temp": 21}\n</tool_response>\n<tool_response>\n{"rain": false}\n</tool_response>');
    expect(out.every((m) => !('fromTool' in m) && !('tool_calls' in m))).toBe(true);
    const t = new ChatTemplate(chatml, 'builtin');
    expect(t.knowsTools).toBe(false);
    const text = t.render(conversation, { tools });
    expect(text.startsWith('<|im_start|>system\n# Tools')).toBe(true);
    expect(text).toContain('<|im_start|>user\n<tool_response>');
    expect(t.render([{ role: 'user', content: 'hi' }])).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n'); // no tools: as before
  });

  it('a template that reads tools gets them, and calls with object arguments', () => {
    const src =
      "{% if tools %}TOOLS {{ tools | length }} {{ tools[0].function.name }}\n{% endif %}{% for m in messages %}{{ m.role }}:{% if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function.name }}({{ c.function.arguments.city }}){% endfor %}{% else %}{{ m.content }}{% endif %}|{% endfor %}";
    const t = new ChatTemplate(src, 'builtin');
    expect(t.knowsTools).toBe(true);
    expect(t.render(conversation, { tools, addGenerationPrompt: false })).toBe('TOOLS 1 get_weather\nuser:weather in Paris?|assistant:get_weather(Paris)|tool:{"temp": 21}|tool:{"rain": false}|');
  });
});
