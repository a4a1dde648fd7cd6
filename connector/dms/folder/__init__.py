"""The folder contract's agency side: outbox claims, sent/failed results, the inbox, the watcher."""
