package org.newsradar.cluster;

import java.io.IOException;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

import org.apache.lucene.analysis.TokenFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

/**
 * The three analysis components of the security index's email analyser.
 *
 * <p>With security on, Elasticsearch creates its .security index with an analyser made of the
 * uax_url_email tokenizer and the pattern_capture and unique token filters, all three from the
 * analysis-common module, which the integ-test distribution leaves out; without them no user,
 * role or API key can be stored. They are registered here under those names, built on the same
 * Lucene classes (the unique filter drops a term seen before in the same stream, as Elasticsearch's
 * does by default).
 */
public final class SecurityAnalysisPlugin extends Plugin implements AnalysisPlugin {

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        return Map.of(
            "uax_url_email",
            (indexSettings, environment, name, settings) -> TokenizerFactory.newFactory(name, UAX29URLEmailTokenizer::new)
        );
    }

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        return Map.of("pattern_capture", (indexSettings, environment, name, settings) -> {
            // Elasticsearch also builds each filter once without settings; with no patterns, the
            // filter passes tokens through.
            List<String> regexes = settings.getAsList("patterns");
            if (regexes.isEmpty()) {
                return factory(name, stream -> stream);
            }
            Pattern[] patterns = regexes.stream().map(Pattern::compile).toArray(Pattern[]::new);
            boolean preserveOriginal = settings.getAsBoolean("preserve_original", true);
            return factory(name, stream -> new PatternCaptureGroupTokenFilter(stream, preserveOriginal, patterns));
        }, "unique", (indexSettings, environment, name, settings) -> factory(name, UniqueFilter::new));
    }

    private static TokenFilterFactory factory(String name, java.util.function.Function<TokenStream, TokenStream> filter) {
        return new TokenFilterFactory() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public TokenStream create(TokenStream tokenStream) {
                return filter.apply(tokenStream);
            }
        };
    }

    /** Passes each term once per stream. */
    private static final class UniqueFilter extends TokenFilter {
        private final CharTermAttribute term = addAttribute(CharTermAttribute.class);
        private final Set<String> seen = new HashSet<>();

        UniqueFilter(TokenStream input) {
            super(input);
        }

        @Override
        public boolean incrementToken() throws IOException {
            while (input.incrementToken()) {
                if (seen.add(term.toString())) {
                    return true;
                }
            }
            return false;
        }

        @Override
        public void reset() throws IOException {
            super.reset();
            seen.clear();
        }
    }
}
