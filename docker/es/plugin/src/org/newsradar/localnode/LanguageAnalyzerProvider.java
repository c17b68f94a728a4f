package org.newsradar.localnode;

import java.util.function.Supplier;

import org.apache.lucene.analysis.Analyzer;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.index.analysis.AbstractIndexAnalyzerProvider;
import org.elasticsearch.index.analysis.AnalyzerProvider;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;

/** One Lucene language analyser with its default stop words and stemmer, shared per index. */
final class LanguageAnalyzerProvider<T extends Analyzer> extends AbstractIndexAnalyzerProvider<T> {

    private final T analyzer;

    private LanguageAnalyzerProvider(String name, Settings settings, T analyzer) {
        super(name, settings);
        this.analyzer = analyzer;
    }

    static <T extends Analyzer> AnalysisProvider<AnalyzerProvider<? extends Analyzer>> of(Supplier<T> factory) {
        return (indexSettings, environment, name, settings) -> new LanguageAnalyzerProvider<>(name, settings, factory.get());
    }

    @Override
    public T get() {
        return analyzer;
    }
}
