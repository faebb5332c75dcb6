"""The Faust app, its topics and the message codecs."""
