"""Tokenizers shared by the models and the data pipelines (neither imports the other)."""
from .caption_tokenizers import OpenCLIPTokenizer, WordTokenizer, build_tokenizer
from .chat_tokenizers import ChatWordTokenizer, HFChatTokenizer, build_chat_tokenizer

__all__ = ['WordTokenizer', 'OpenCLIPTokenizer', 'build_tokenizer', 'ChatWordTokenizer',
           'HFChatTokenizer', 'build_chat_tokenizer']
