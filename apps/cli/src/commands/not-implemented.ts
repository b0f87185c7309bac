import { CliExit } from '../io';

/** Commands whose engine part is not built yet exit 2 with this message: no fake output. */
export function notImplemented(command: string, issue: 'quantization' | 'serving'): () => never {
  return () => {
    throw new CliExit(2, `lmfleet ${command}: not implemented yet: tracked in the ${issue === 'quantization' ? 'quantization' : 'serving'} issue`);
  };
}
