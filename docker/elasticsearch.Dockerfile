# Elasticsearch for docker/compose.yml: the official image plus the analysis-ukrainian plugin,
# which provides the "ukrainian" analyser that mappings/articles.json uses for title_uk/text_uk
# (the other language analysers are built in). Keep ES_VERSION equal to Kibana's tag.
ARG ES_VERSION=8.19.21
FROM docker.elastic.co/elasticsearch/elasticsearch:${ES_VERSION}
RUN bin/elasticsearch-plugin install --batch analysis-ukrainian
