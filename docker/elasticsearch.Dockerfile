# Elasticsearch for docker/compose.yml: the official image plus the analysis plugins whose
# analysers mappings/articles.json names (pipeline/languages.py is the table; a test keeps this
# list equal to its plugins): polish (stempel), kuromoji, smartcn, nori and ukrainian. The other
# language analysers are analysis-common's, built in. Keep ES_VERSION equal to Kibana's tag.
ARG ES_VERSION=8.19.21
FROM docker.elastic.co/elasticsearch/elasticsearch:${ES_VERSION}
RUN bin/elasticsearch-plugin install --batch \
      analysis-kuromoji \
      analysis-nori \
      analysis-smartcn \
      analysis-stempel \
      analysis-ukrainian
