export { GrammarService, type GuideHandle, type ResponseFormat } from './grammar-service';
